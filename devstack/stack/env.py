"""Settings -> MM_* environment, to hand a resolved configuration to child processes.

The profile travels too: settings marked embedded (`mmctl run`) give their children
``MM_PROFILE=embedded``, which lets them run on the development secrets; anything else gives
``production``, whose processes refuse them (Settings.check_secrets).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, SecretStr

from mmstream.settings import Settings

# Sections of Settings that are themselves flattened into MM_SECTION__FIELD variables.
# Other model values (e.g. dicts of ApiKey) travel as JSON, as pydantic-settings expects.


def _plain(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def settings_env(settings: Settings) -> dict[str, str]:
    """Every set field as MM_SECTION__FIELD=value (secrets revealed: for child processes only)."""
    env: dict[str, str] = {}

    def put(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                put(f"{key}__", value)
            elif value is None:
                continue
            elif isinstance(value, (dict, list, tuple)):
                env[key] = json.dumps(_plain(value), ensure_ascii=False)
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            else:
                env[key] = str(_plain(value))

    put("MM_", settings)
    return env
