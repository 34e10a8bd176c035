"""Settings -> MM_* environment, to hand a resolved configuration to child processes."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from mmstream.settings import Settings


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
            elif isinstance(value, SecretStr):
                env[key] = value.get_secret_value()
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            else:
                env[key] = str(value)

    put("MM_", settings)
    return env
