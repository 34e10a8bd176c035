"""Authentication of the exchange: HTTP Basic at ``checkauth``, then a session cookie.

1С cannot send a JWT: it authenticates ``checkauth`` with the user and password of its
exchange settings, takes the cookie name and value from the answer's second and third
lines and sends that cookie with every later request. The cookie is a random token; only
its SHA-256 is stored, so the sessions table holds nothing a reader could replay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from connectors.commerceml.errors import BadCredentials
from mmstream.settings import CommerceMLSettings

COOKIE_NAME = "mm_commerceml_session"


def check_basic(header: str | None, cfg: CommerceMLSettings) -> str:
    """The user name of a valid ``Authorization: Basic`` header, or BadCredentials."""
    if not header or not header[:6].lower() == "basic ":
        raise BadCredentials("checkauth needs HTTP Basic credentials (the exchange user of 1С)")
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadCredentials("the Basic credentials are not valid base64") from None
    user, sep, password = raw.partition(b":")
    expected_password = cfg.password.get_secret_value() if cfg.password is not None else ""
    if not expected_password:
        raise BadCredentials("the exchange is disabled: no password is configured on the bridge")
    # Both compared, always, in constant time: the answer must not tell which one was wrong.
    ok_user = _same(user, cfg.username)
    ok_password = _same(password, expected_password)
    if not (sep and ok_user and ok_password):
        raise BadCredentials("wrong user name or password")
    return cfg.username


def _same(given: bytes, expected: str) -> bool:
    # 1С 8.x sends UTF-8; older platforms may send the Windows code page for Cyrillic names.
    utf8 = hmac.compare_digest(given, expected.encode("utf-8"))
    try:
        cp1251 = hmac.compare_digest(given, expected.encode("cp1251"))
    except UnicodeEncodeError:
        cp1251 = False
    return utf8 or cp1251


def new_cookie() -> str:
    """A fresh session cookie value (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def cookie_hash(value: str) -> bytes:
    """What the sessions table stores for a cookie value."""
    return hashlib.sha256(value.encode("utf-8")).digest()


def cookie_from(header: str | None) -> str | None:
    """Our session cookie's value from a ``Cookie`` header (1С may send others too)."""
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name.strip() == COOKIE_NAME and value.strip():
            return value.strip()
    return None
