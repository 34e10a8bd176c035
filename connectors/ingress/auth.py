"""Who is calling the bridge: bearer JWTs or per-source static API keys.

Two credentials are accepted on every route:

- ``Authorization: Bearer <jwt>``: HS256 tokens carrying a ``roles`` claim (1c, courier,
  admin); the principal is the token's ``sub``.
- ``X-API-Key: <key>``: a static key from ``settings.auth.api_keys`` (name -> key, roles),
  for sources that cannot mint tokens; the principal is the key's name.

Identification happens once per request, before routing, in :class:`Authenticate` (the rate
limiter and the idempotency store need the principal before a route runs); it records the
caller or the credential's fault and never refuses. Refusal is **deny by default**: the
app-level dependency :func:`authenticated` answers 401 on every route that does not declare
its own authentication, and :func:`require_role` answers 403 when the caller lacks a role.

A route that authenticates by its protocol (Bitrix24 events by ``application_token``,
CommerceML by Basic then a cookie) declares it in its OpenAPI operation, which keeps the
document and the behaviour in step::

    @router.post("/events", openapi_extra=authenticates_itself({"requestBody": ...}))

``security: []`` is the standard OpenAPI way to say "no document-level scheme applies here".
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jwt
from fastapi import Request

from connectors.ingress.errors import ApiError, ErrorKind
from mmstream.settings import AuthSettings, Settings

ROLES = ("1c", "courier", "admin")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mastermobile-stream"'}
# Keys of the ASGI scope's state (request.state) written by Authenticate.
_IDENTITY = "identity"
_AUTH_ERROR = "auth_error"


@dataclass(frozen=True)
class Identity:
    """A verified caller: the principal (token subject or API key name) and its roles."""

    principal: str
    roles: tuple[str, ...]
    scheme: str  # "bearer" or "api_key"
    claims: dict[str, Any] = field(default_factory=dict)


def mint_token(auth: AuthSettings, *, subject: str, roles: list[str], ttl_s: int = 3600) -> str:
    """Issue a token (for `mmctl token`, the demo load and tests)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "roles": roles,
        "aud": auth.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    if auth.jwt_issuer:
        claims["iss"] = auth.jwt_issuer
    return jwt.encode(claims, auth.jwt_secret.get_secret_value(), algorithm=auth.jwt_algorithm)


@lru_cache(maxsize=4096)
def _decode(token: str, secret: str, algorithm: str, audience: str, issuer: str | None) -> dict:
    # Clients reuse a token for many requests and a signature check costs ~0.3 ms of a
    # request's CPU: remember verified tokens (the secret is part of the key, so rotating it
    # invalidates them). Failures raise and are not cached. Callers must not mutate the result.
    return jwt.decode(
        token,
        secret,
        algorithms=[algorithm],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "sub"]},
    )


def verify(auth: AuthSettings, header: str | None) -> dict:
    """Claims of a valid ``Authorization: Bearer`` header, or ApiError 401."""
    if not header or not header.lower().startswith("bearer "):
        raise ApiError(
            ErrorKind.UNAUTHENTICATED,
            "an Authorization: Bearer token is required",
            headers=_CHALLENGE,
        )
    try:
        claims = _decode(
            header[7:].strip(),
            auth.jwt_secret.get_secret_value(),
            auth.jwt_algorithm,
            auth.jwt_audience,
            auth.jwt_issuer,
        )
        if claims["exp"] <= time.time():  # a cached token may have expired since
            raise jwt.ExpiredSignatureError("Signature has expired")
        return claims
    except jwt.ExpiredSignatureError:
        raise ApiError(
            ErrorKind.UNAUTHENTICATED, "the token has expired", headers=_CHALLENGE
        ) from None
    except jwt.InvalidTokenError as exc:
        raise ApiError(
            ErrorKind.UNAUTHENTICATED, f"the token is not valid: {exc}", headers=_CHALLENGE
        ) from None


def identify(auth: AuthSettings, authorization: str | None, api_key: str | None) -> Identity | None:
    """The verified caller; None when neither a bearer token nor an API key was sent.

    A bearer token wins over an API key. Other Authorization schemes (Basic, used by
    CommerceML) count as no credential here: routes that use them check them themselves.
    Raises ApiError 401 for a credential that was sent but is not valid.
    """
    if authorization and authorization.lower().startswith("bearer "):
        claims = verify(auth, authorization)
        roles = claims.get("roles")
        roles = tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()
        return Identity(str(claims["sub"]), roles, "bearer", claims)
    if api_key:
        return _api_key_identity(auth, api_key)
    return None


def _api_key_identity(auth: AuthSettings, given: str) -> Identity:
    found: Identity | None = None
    offered = given.encode("utf-8", "surrogateescape")
    # Every configured key is compared (no early exit) and each comparison is constant-time,
    # so the answer's timing says nothing about which key, or how much of one, matched.
    for name, spec in auth.api_keys.items():
        expected = spec.key.get_secret_value().encode()
        if expected and hmac.compare_digest(offered, expected) and found is None:
            found = Identity(name, tuple(spec.roles), "api_key")
    if found is None:
        raise ApiError(ErrorKind.UNAUTHENTICATED, "the X-API-Key is not valid", headers=_CHALLENGE)
    return found


class Authenticate:
    """Pure ASGI middleware: record who is calling in ``request.state`` (never refuses).

    Sets ``identity`` (an :class:`Identity` or None), ``principal`` when identified, and
    ``auth_error`` (the ApiError a bad credential earned) for :func:`authenticated`.
    """

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.auth = settings.auth

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            state = scope.setdefault("state", {})
            headers = dict(scope["headers"])
            authorization = headers.get(b"authorization", b"").decode("latin-1") or None
            api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip() or None
            try:
                identity = identify(self.auth, authorization, api_key)
            except ApiError as exc:
                identity, state[_AUTH_ERROR] = None, exc
            state[_IDENTITY] = identity
            if identity is not None:
                state["principal"] = identity.principal
        await self.app(scope, receive, send)


def identity_of(request: Request) -> Identity:
    """The caller recorded by :class:`Authenticate` (identified here if it did not run), or 401."""
    state = request.scope.setdefault("state", {})
    if _IDENTITY not in state:
        try:
            state[_IDENTITY] = identify(
                request.app.state.settings.auth,
                request.headers.get("authorization"),
                (request.headers.get("x-api-key") or "").strip() or None,
            )
        except ApiError as exc:
            state[_IDENTITY], state[_AUTH_ERROR] = None, exc
    identity = state[_IDENTITY]
    if identity is None:
        raise state.get(_AUTH_ERROR) or ApiError(
            ErrorKind.UNAUTHENTICATED,
            "credentials are required: an Authorization: Bearer token or an X-API-Key",
            headers=_CHALLENGE,
        )
    return identity


def authenticates_itself(openapi_extra: dict | None = None) -> dict:
    """``openapi_extra`` for a route that checks its caller itself (merged with ``openapi_extra``).

    The global check (:func:`authenticated`) then lets every request through to the route,
    and the OpenAPI document shows the operation without the bearer / API key schemes.
    """
    return {**(openapi_extra or {}), "security": []}


def declares_own_security(route: object) -> bool:
    """True when a route's OpenAPI operation sets ``security`` itself (see authenticates_itself)."""
    extra = getattr(route, "openapi_extra", None)
    return isinstance(extra, dict) and "security" in extra


async def authenticated(request: Request) -> None:
    """App-level dependency: deny by default. 401 unless the caller is identified or the
    route declares its own authentication."""
    if not declares_own_security(request.scope.get("route")):
        identity_of(request)


def require_role(role: str) -> Callable[[Request], Awaitable[dict]]:
    """A FastAPI dependency admitting callers (token or API key) that carry ``role`` (or ``admin``).

    Returns the token's claims (for an API key: ``sub`` and ``roles``).
    """

    # async: FastAPI runs plain-def dependencies in a thread pool, which costs more than the check.
    async def dependency(request: Request) -> dict:
        identity = identity_of(request)
        if role not in identity.roles and "admin" not in identity.roles:
            raise ApiError(ErrorKind.FORBIDDEN, f"this route needs the role {role!r}")
        request.state.principal = identity.principal
        return {**identity.claims, "sub": identity.principal, "roles": list(identity.roles)}

    return dependency
