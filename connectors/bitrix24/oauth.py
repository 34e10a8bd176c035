"""OAuth tokens of a Bitrix24 application: where the current pair lives and how it is renewed.

An access token lives an hour; the refresh token is exchanged at the vendor's token
endpoint (``https://oauth.bitrix.info/oauth/token/?grant_type=refresh_token&client_id=…&
client_secret=…&refresh_token=…``, GET as documented) for a NEW pair, and the old refresh
token and access token stop working. So two workers refreshing with the same refresh token
would lose: the second gets ``invalid_grant`` and the application is locked out until an
administrator re-authorises it. Hence:

- in a process, :class:`OAuthSession` lets one coroutine refresh while the others wait and
  reuse its result (single flight);
- across workers, :class:`PgTokenStore` refreshes under the portal row's lock
  (``SELECT … FOR UPDATE``) and only if the stored access token is still the one that failed;
  otherwise another worker already rotated it and the stored pair is adopted.

Tokens never appear in logs, reprs or exception texts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.bitrix24.errors import (
    Bitrix24Error,
    ServerError,
    TransportError,
    error_from_response,
)
from mmstream.errors import ConfigurationError
from mmstream.settings import Bitrix24OAuthSettings

log = logging.getLogger(__name__)

#: Exchanges a refresh token for a new pair.
Fetch = Callable[[str], Awaitable["TokenPair"]]


@dataclass(frozen=True)
class TokenPair:
    """An access token, the refresh token issued with it and when the access token expires."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: Epoch seconds; None when unknown (then only ``expired_token`` triggers a refresh).
    expires_at: float | None = None
    client_endpoint: str | None = None
    member_id: str | None = None

    @classmethod
    def from_response(cls, body: dict[str, Any], now: float) -> TokenPair:
        """The pair of a token endpoint answer (``expires`` or ``expires_in`` give the expiry)."""
        try:
            access, refresh = str(body["access_token"]), str(body["refresh_token"])
        except KeyError:
            raise ServerError(
                200, "", "token endpoint answered without a token pair", method="oauth.token"
            ) from None
        expires_at: float | None = None
        if body.get("expires") not in (None, ""):
            expires_at = float(body["expires"])
        elif body.get("expires_in") not in (None, ""):
            expires_at = now + float(body["expires_in"])
        return cls(
            access,
            refresh,
            expires_at,
            body.get("client_endpoint") or None,
            body.get("member_id") or None,
        )


class TokenStore(Protocol):
    """Where the current pair of each portal lives."""

    async def load(self, portal: str) -> TokenPair | None:
        """The stored pair, or None."""

    async def seed(self, portal: str, pair: TokenPair) -> TokenPair:
        """Store ``pair`` unless a pair is stored already; the stored pair."""

    async def install(self, portal: str, pair: TokenPair) -> None:
        """Store ``pair`` in place of any stored one: an (re)install issued it, and the
        previous pair may be revoked."""

    async def rotate(self, portal: str, failed_access: str, fetch: Fetch) -> TokenPair:
        """Replace the pair whose access token is ``failed_access`` by ``fetch(refresh)``.

        When the stored access token is another one, it was rotated meanwhile: return it
        without fetching.
        """


class MemoryTokenStore:
    """Tokens in process memory: for one worker, or tests. Lost on restart."""

    def __init__(self) -> None:
        self._pairs: dict[str, TokenPair] = {}
        self._lock = asyncio.Lock()

    async def load(self, portal: str) -> TokenPair | None:
        return self._pairs.get(portal)

    async def seed(self, portal: str, pair: TokenPair) -> TokenPair:
        return self._pairs.setdefault(portal, pair)

    async def install(self, portal: str, pair: TokenPair) -> None:
        async with self._lock:
            self._pairs[portal] = pair

    async def rotate(self, portal: str, failed_access: str, fetch: Fetch) -> TokenPair:
        async with self._lock:
            current = self._pairs.get(portal)
            if current is None:
                raise ConfigurationError(f"no Bitrix24 OAuth tokens stored for {portal}")
            if current.access_token != failed_access:
                return current
            self._pairs[portal] = new = await fetch(current.refresh_token)
            return new


_SELECT = (
    "SELECT access_token, refresh_token, expires_at, client_endpoint, member_id "
    "FROM bitrix24_oauth_token WHERE portal = :portal"
)
_LOCK = text(_SELECT + " FOR UPDATE")
_LOAD = text(_SELECT)
_SEED = text(
    "INSERT INTO bitrix24_oauth_token "
    "(portal, access_token, refresh_token, expires_at, client_endpoint, member_id) "
    "VALUES (:portal, :access, :refresh, :expires_at, :endpoint, :member) "
    "ON CONFLICT (portal) DO NOTHING"
)
_INSTALL = text(
    "INSERT INTO bitrix24_oauth_token "
    "(portal, access_token, refresh_token, expires_at, client_endpoint, member_id) "
    "VALUES (:portal, :access, :refresh, :expires_at, :endpoint, :member) "
    "ON CONFLICT (portal) DO UPDATE SET access_token = EXCLUDED.access_token, "
    "refresh_token = EXCLUDED.refresh_token, expires_at = EXCLUDED.expires_at, "
    "client_endpoint = COALESCE(EXCLUDED.client_endpoint, bitrix24_oauth_token.client_endpoint), "
    "member_id = COALESCE(EXCLUDED.member_id, bitrix24_oauth_token.member_id), "
    "generation = bitrix24_oauth_token.generation + 1, updated_at = now()"
)
_UPDATE = text(
    "UPDATE bitrix24_oauth_token SET access_token = :access, refresh_token = :refresh, "
    "expires_at = :expires_at, client_endpoint = COALESCE(:endpoint, client_endpoint), "
    "member_id = COALESCE(:member, member_id), generation = generation + 1, updated_at = now() "
    "WHERE portal = :portal"
)


class PgTokenStore:
    """Tokens in ``bitrix24_oauth_token``, rotated under the row's lock."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def load(self, portal: str) -> TokenPair | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_LOAD, {"portal": portal})).first()
        return _pair(row)

    async def seed(self, portal: str, pair: TokenPair) -> TokenPair:
        async with self.engine.begin() as conn:
            await conn.execute(_SEED, _params(portal, pair))
            row = (await conn.execute(_LOAD, {"portal": portal})).first()
        return _pair(row) or pair

    async def install(self, portal: str, pair: TokenPair) -> None:
        # An upsert takes the row lock: a worker refreshing meanwhile finishes first, and
        # its pair (of the old installation) is then replaced by the installed one.
        async with self.engine.begin() as conn:
            await conn.execute(_INSTALL, _params(portal, pair))

    async def rotate(self, portal: str, failed_access: str, fetch: Fetch) -> TokenPair:
        # The row stays locked while the token endpoint answers: the other workers wait
        # here and then see the new pair, instead of spending the refresh token twice.
        async with self.engine.begin() as conn:
            current = _pair((await conn.execute(_LOCK, {"portal": portal})).first())
            if current is None:
                raise ConfigurationError(f"no Bitrix24 OAuth tokens stored for {portal}")
            if current.access_token != failed_access:
                return current
            new = await fetch(current.refresh_token)
            # If this commit fails, the new pair is lost and the old refresh token is spent:
            # the log line tells the operator why re-authorisation is needed.
            try:
                await conn.execute(_UPDATE, _params(portal, new))
            except Exception:
                log.error("bitrix24 token refreshed but not stored", extra={"portal": portal})
                raise
        return new


def _params(portal: str, pair: TokenPair) -> dict[str, Any]:
    expires = datetime.fromtimestamp(pair.expires_at, UTC) if pair.expires_at is not None else None
    return {
        "portal": portal,
        "access": pair.access_token,
        "refresh": pair.refresh_token,
        "expires_at": expires,
        "endpoint": pair.client_endpoint,
        "member": pair.member_id,
    }


def _pair(row: Any) -> TokenPair | None:
    if row is None:
        return None
    expires = row.expires_at.timestamp() if row.expires_at is not None else None
    return TokenPair(
        row.access_token, row.refresh_token, expires, row.client_endpoint, row.member_id
    )


async def request_refresh(
    http: httpx.AsyncClient,
    oauth: Bitrix24OAuthSettings,
    refresh_token: str,
    *,
    now: Callable[[], float] = time.time,
) -> TokenPair:
    """Exchange ``refresh_token`` at the token endpoint; the new pair or a Bitrix24Error
    (``invalid_grant`` → AuthFailed: the refresh token is spent or revoked)."""
    return await _grant(
        http, oauth, {"grant_type": "refresh_token", "refresh_token": refresh_token}, now
    )


async def request_authorization_code(
    http: httpx.AsyncClient,
    oauth: Bitrix24OAuthSettings,
    code: str,
    *,
    now: Callable[[], float] = time.time,
) -> TokenPair:
    """Exchange the one-time ``code`` of an install redirect for the application's first
    pair (``grant_type=authorization_code``); a Bitrix24Error as :func:`request_refresh`."""
    return await _grant(http, oauth, {"grant_type": "authorization_code", "code": code}, now)


class _TokenUrlRedact(logging.Filter):
    """Masks the client secret, tokens and one-time code in httpx's "HTTP Request" lines."""

    _SECRET = re.compile(r"([?&](?:client_secret|code|refresh_token|access_token)=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._SECRET.sub(r"\1***", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _mask_token_urls() -> None:
    # The token endpoint takes its secrets in the query (GET, as documented) and httpx logs
    # request URLs at INFO, whichever client sends them.
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _TokenUrlRedact) for f in httpx_log.filters):
        httpx_log.addFilter(_TokenUrlRedact())


async def _grant(
    http: httpx.AsyncClient,
    oauth: Bitrix24OAuthSettings,
    grant: dict[str, str],
    now: Callable[[], float],
) -> TokenPair:
    _mask_token_urls()
    params = {
        "grant_type": grant["grant_type"],
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret.get_secret_value(),
        **grant,
    }
    try:
        response = await http.get(oauth.token_url, params=params)
    except (
        httpx.TimeoutException,
        httpx.NetworkError,
        httpx.RemoteProtocolError,
        httpx.ProxyError,
    ) as exc:
        # `from None`: the request URL carries the client secret and the refresh token.
        raise TransportError(
            None, type(exc).__name__, "no answer from the token endpoint", method="oauth.token"
        ) from None
    except httpx.HTTPError as exc:
        raise Bitrix24Error(
            None, type(exc).__name__, "token request could not be sent", method="oauth.token"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.is_success and isinstance(body, dict) and not body.get("error"):
        return TokenPair.from_response(body, now())
    raise error_from_response(
        response.status_code, body if isinstance(body, dict) else None, method="oauth.token"
    )


class OAuthSession:
    """The access token one client sends, refreshed once for all its concurrent callers."""

    def __init__(
        self,
        oauth: Bitrix24OAuthSettings,
        store: TokenStore,
        portal: str,
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.oauth = oauth
        self.store = store
        self.portal = portal
        self._fetch = fetch
        self._clock = clock
        self._pair: TokenPair | None = None
        self._lock = asyncio.Lock()
        #: Refreshes this session made itself (not adopted ones): for tests and logs.
        self.refreshes = 0

    async def access_token(self) -> str:
        """The token to send now; refreshed first when it is about to expire."""
        pair = self._pair or await self._load()
        if (
            pair.expires_at is not None
            and self._clock() >= pair.expires_at - self.oauth.refresh_margin_s
        ):
            return await self.refreshed(pair.access_token)
        return pair.access_token

    async def refreshed(self, failed_access: str) -> str:
        """A token to use instead of ``failed_access`` (expired): refreshed once, shared."""
        async with self._lock:
            if self._pair is not None and self._pair.access_token != failed_access:
                return self._pair.access_token  # another coroutine refreshed meanwhile
            self._pair = await self.store.rotate(self.portal, failed_access, self._counted_fetch)
            return self._pair.access_token

    async def reloaded(self, failed_access: str) -> str | None:
        """The stored token when it is newer than ``failed_access`` (another worker rotated
        the pair, which invalidated ours), else None."""
        async with self._lock:
            if self._pair is not None and self._pair.access_token != failed_access:
                return self._pair.access_token
            stored = await self.store.load(self.portal)
            if stored is None or stored.access_token == failed_access:
                return None
            self._pair = stored
            return stored.access_token

    async def _load(self) -> TokenPair:
        async with self._lock:
            if self._pair is None:
                stored = await self.store.load(self.portal)
                if stored is None:
                    stored = await self.store.seed(self.portal, self._initial())
                self._pair = stored
            return self._pair

    def _initial(self) -> TokenPair:
        access = self.oauth.access_token.get_secret_value()
        refresh = self.oauth.refresh_token.get_secret_value()
        if not refresh:
            raise ConfigurationError(
                "bitrix24 OAuth: no tokens stored for this portal and none configured; set "
                "MM_BITRIX24__OAUTH__ACCESS_TOKEN and MM_BITRIX24__OAUTH__REFRESH_TOKEN"
            )
        # Unknown expiry: the first call tells (expired_token) and triggers the refresh.
        return TokenPair(access or "-", refresh, None)

    async def _counted_fetch(self, refresh_token: str) -> TokenPair:
        pair = await self._fetch(refresh_token)
        self.refreshes += 1
        log.info("bitrix24 oauth token refreshed", extra={"portal": self.portal})
        return pair


__all__ = [
    "MemoryTokenStore",
    "OAuthSession",
    "PgTokenStore",
    "TokenPair",
    "TokenStore",
    "request_authorization_code",
    "request_refresh",
]
