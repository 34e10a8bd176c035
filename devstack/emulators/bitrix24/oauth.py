"""The OAuth side of an emulated portal: the token endpoint and access-token checks.

As the vendor's server: ``/oauth/token/?grant_type=refresh_token&client_id&client_secret&
refresh_token`` answers a NEW pair and revokes the old refresh token AND the access token
issued with it (a second refresh with the old one gets ``invalid_grant``); an access token
lives ``ttl_s``; ``grant_type=authorization_code&code`` spends a one-time code from
:meth:`OAuthServer.authorize` (what the portal appends to the install redirect); an access token
lives ``ttl_s``; REST calls with an expired one get HTTP 401 ``expired_token``, with an unknown
or revoked one ``invalid_token``. Tests expire every token on demand to provoke refreshes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from devstack.emulators.bitrix24.envelope import ApiError

MEMBER_ID = "0e5dbb8c4b7a4c3f9b2e6d1a7c8f9e01"


class OAuthServer:
    """Issued tokens of one application on one portal."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ttl_s = ttl_s
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every token and the counters."""
        self._access: dict[str, float] = {}  # live access token -> expiry (epoch s)
        self._refresh: dict[str, str] = {}  # live refresh token -> its access token
        self._codes: set[str] = set()  # authorization codes not spent yet
        #: Successful refresh grants (a test counts them to prove single flight).
        self.refreshes = 0
        #: Refused refresh grants (spent or unknown refresh token).
        self.refused = 0

    def issue(self, client_endpoint: str) -> dict[str, Any]:
        """A new pair, answered as the token endpoint does."""
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        expires = self._clock() + self.ttl_s
        self._access[access] = expires
        self._refresh[refresh] = access
        return {
            "access_token": access,
            "expires": int(expires),
            "expires_in": int(self.ttl_s),
            "scope": "app",
            "domain": "oauth.bitrix.info",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "client_endpoint": client_endpoint,
            "member_id": MEMBER_ID,
            "user_id": 1,
            "refresh_token": refresh,
        }

    def authorize(self) -> str:
        """A one-time authorization code, as the portal issues on an install redirect."""
        code = secrets.token_hex(16)
        self._codes.add(code)
        return code

    def grant(self, params: dict[str, Any], client_endpoint: str) -> tuple[int, dict[str, Any]]:
        """Answer a token endpoint request: (HTTP status, JSON body)."""
        grant_type = params.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be refresh_token or authorization_code",
            }
        if (
            params.get("client_id") != self.client_id
            or params.get("client_secret") != self.client_secret
        ):
            return 401, {"error": "invalid_client", "error_description": "Invalid client"}
        if grant_type == "authorization_code":
            code = str(params.get("code") or "")
            if code not in self._codes:
                self.refused += 1
                return 400, {"error": "invalid_grant", "error_description": "Invalid grant"}
            self._codes.discard(code)  # one use only, as at the vendor
            return 200, self.issue(client_endpoint)
        old_access = self._refresh.pop(str(params.get("refresh_token") or ""), None)
        if old_access is None:
            self.refused += 1
            return 400, {"error": "invalid_grant", "error_description": "Invalid grant"}
        self._access.pop(old_access, None)
        self.refreshes += 1
        return 200, self.issue(client_endpoint)

    def check(self, token: Any) -> ApiError | None:
        """None when ``token`` may call REST methods now, else the portal's error."""
        if token in (None, ""):
            return ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        expires = self._access.get(str(token))
        if expires is None:
            return ApiError(401, "invalid_token", "The access token provided is invalid.")
        if expires <= self._clock():
            return ApiError(401, "expired_token", "The access token provided has expired.")
        return None

    def expire_all(self) -> int:
        """Let every live access token expire now; how many there were."""
        now = self._clock()
        for token in self._access:
            self._access[token] = now - 1
        return len(self._access)

    def stats(self) -> dict[str, int]:
        """Counters for ``GET /_emulator/oauth``."""
        now = self._clock()
        return {
            "refreshes": self.refreshes,
            "refused": self.refused,
            "live_access_tokens": sum(1 for e in self._access.values() if e > now),
            "live_refresh_tokens": len(self._refresh),
        }
