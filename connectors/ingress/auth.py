"""Bearer-token authentication: HS256 JWTs carrying a ``roles`` claim (1c, courier, admin)."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
from fastapi import Request

from connectors.ingress.errors import ApiError, ErrorKind
from mmstream.settings import AuthSettings

ROLES = ("1c", "courier", "admin")


def mint_token(auth: AuthSettings, *, subject: str, roles: list[str], ttl_s: int = 3600) -> str:
    """Issue a token (for `mmctl token`, the demo load and tests)."""
    now = int(time.time())
    claims = {"sub": subject, "roles": roles, "aud": auth.jwt_audience, "iat": now, "exp": now + ttl_s}
    if auth.jwt_issuer:
        claims["iss"] = auth.jwt_issuer
    return jwt.encode(claims, auth.jwt_secret.get_secret_value(), algorithm=auth.jwt_algorithm)


def verify(auth: AuthSettings, header: str | None) -> dict:
    """Claims of a valid ``Authorization: Bearer`` header, or ApiError 401."""
    challenge = {"WWW-Authenticate": 'Bearer realm="mastermobile-stream"'}
    if not header or not header.lower().startswith("bearer "):
        raise ApiError(ErrorKind.UNAUTHENTICATED, "an Authorization: Bearer token is required",
                       headers=challenge)
    try:
        return jwt.decode(
            header[7:].strip(),
            auth.jwt_secret.get_secret_value(),
            algorithms=[auth.jwt_algorithm],
            audience=auth.jwt_audience,
            issuer=auth.jwt_issuer,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(ErrorKind.UNAUTHENTICATED, "the token has expired", headers=challenge) from None
    except jwt.InvalidTokenError as exc:
        raise ApiError(ErrorKind.UNAUTHENTICATED, f"the token is not valid: {exc}",
                       headers=challenge) from None


def require_role(role: str) -> Callable[[Request], dict]:
    """A FastAPI dependency admitting tokens that carry ``role`` (or ``admin``)."""

    def dependency(request: Request) -> dict:
        claims = verify(request.app.state.settings.auth, request.headers.get("authorization"))
        roles = claims.get("roles") or []
        if role not in roles and "admin" not in roles:
            raise ApiError(ErrorKind.FORBIDDEN, f"this route needs the role {role!r}")
        request.state.principal = claims["sub"]
        return claims

    return dependency
