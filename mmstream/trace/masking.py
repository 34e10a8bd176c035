"""What of a request / response the integration log may keep: secrets replaced by ``***``.

Pure functions. Secrets never stored: the Bitrix24 webhook code (in the URL path), OAuth
tokens and client secrets (``auth`` parameter, token endpoint query and answer), passwords,
API keys. Headers are not stored at all (Basic auth lives there). Texts are cut to an
excerpt.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from mmstream.settings import mask_url

MASK = "***"

# Field names (any case, in JSON bodies, form bodies and query strings) whose value is a secret.
SECRET_KEYS = frozenset(
    {
        "auth",
        "password",
        "passwd",
        "pass",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "application_token",
        "api_key",
        "apikey",
        "authorization",
        "webhook",
        "webhook_url",
        "sig",
        "signature",
        "member_id",
    }
)
# The same as key=value / "key": "value" inside text that did not parse (cut JSON, HTML).
_NAMES = "|".join(sorted(SECRET_KEYS, key=len, reverse=True))
_SECRET_TEXT = re.compile(
    r"""(?i)(\b["']?(?:""" + _NAMES + r""")["']?\s*[:=]\s*["']?)[^"'&\s,}]+"""
)
_WEBHOOK_PATH = re.compile(r"(/rest/[^/\s]+/)([^/\s\"']+)(?=/)")


def _secret(key: object) -> bool:
    return str(key).lower() in SECRET_KEYS


def mask_value(value: Any) -> Any:
    """A JSON-like value with every secret field's value replaced by ``***``."""
    if isinstance(value, dict):
        return {k: (MASK if _secret(k) else mask_value(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    return value


def mask_text(text: str) -> str:
    """Secrets masked in a text that is not (complete) JSON or a form."""
    return _WEBHOOK_PATH.sub(r"\1" + MASK, _SECRET_TEXT.sub(r"\1" + MASK, text))


def mask_body(raw: bytes | str, content_type: str = "", limit: int = 2000) -> str:
    """A request or response body as the log keeps it: JSON / form fields masked, the rest
    masked by pattern; at most ``limit`` characters."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    if not text:
        return ""
    masked: str
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            masked = json.dumps(mask_value(json.loads(text)), ensure_ascii=False)
        except ValueError:
            masked = mask_text(text)
    elif "x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(text, keep_blank_values=True)
        # A Bitrix24 form key is PHP-style (fields[NAME], auth): the secret is the base name.
        masked = "&".join(f"{k}={MASK if _secret(k.split('[', 1)[0]) else v}" for k, v in pairs)
    else:
        masked = mask_text(text)
    return masked if len(masked) <= limit else masked[:limit] + "…"


def mask_target_url(url: str) -> str:
    """The URL with its credentials masked: userinfo, secret query parameters, webhook code."""
    return mask_url(str(url))
