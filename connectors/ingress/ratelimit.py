"""Per-client rate limit at the bridge: leaky buckets per caller, 429 + Retry-After over it.

Who shares a bucket matters more than its size: behind a load balancer every request comes
from the same address, so a bucket per address would let junk traffic use up the budget of
real sources (and Bitrix24 never re-sends a refused event). Buckets are therefore kept per
*verified* caller wherever one can be named, and everything unverified gets its own, smaller
buckets that verified callers never draw from:

- bearer token / API key callers: per principal (token subject or key name), here;
- Bitrix24 events (``/v1/bitrix24/events``, authenticated by the portal's application token
  inside the body): limited by the route itself, AFTER the token was checked: per portal
  (``auth[member_id]``) when it matches, in the address's unverified bucket when it does not;
- CommerceML (``/1c_exchange``): per session cookie (a hash of it) or, at checkauth, per
  Basic user name; these are not verified here (that takes the database), but a caller
  cannot spend another's bucket without knowing its cookie or user name;
- everything else without a credential (junk, refused credentials): per address, unverified.

Buckets live in the process: with N bridge replicas a client gets up to N times its rate.
That is deliberate: the limit guards each replica (and Kafka behind it) against one runaway
source, not a billing quota. Probes and metrics (``/health/*``, ``/metrics``) are never limited.
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from collections.abc import Callable

from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.middleware import send_error
from mmstream.ratelimit import LeakyBucket
from mmstream.settings import Settings

_EXEMPT_PREFIXES = ("/health/", "/metrics")
#: Routes that limit themselves once they verified their caller (see the module docstring).
SELF_LIMITED = ("/v1/bitrix24/events",)
_COMMERCEML = ("/1c_exchange",)


class ClientLimiter:
    """One :class:`LeakyBucket` per client key, with idle buckets forgotten.

    Not thread-safe: one event loop owns an instance (as LeakyBucket).
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: dict[str, LeakyBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, client: str) -> float:
        """0.0 when the request may pass (and it is counted), else the seconds to wait."""
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._forget_idle()
            bucket = self._buckets[client] = LeakyBucket(self.rate_per_s, self.burst, self._clock)
        return bucket.try_acquire()

    def _forget_idle(self) -> None:
        # A drained bucket holds no information: dropping it changes nobody's limit.
        for client in [c for c, b in self._buckets.items() if b.level <= 0.0]:
            del self._buckets[client]
        # Still full (a flood of distinct clients, all busy): drop the oldest half, which lets
        # those clients start over with a full burst: lenient, but memory stays bounded.
        if len(self._buckets) >= self.max_clients:
            for client in list(self._buckets)[: len(self._buckets) // 2 + 1]:
                del self._buckets[client]


class Limits:
    """The bridge's two sets of buckets: verified callers, and unverified traffic by address."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        ing = settings.ingress
        self.verified = ClientLimiter(ing.client_rate_per_s, ing.client_burst, clock=clock)
        self.unverified = ClientLimiter(
            ing.unverified_rate_per_s, ing.unverified_burst, clock=clock
        )

    def check(self, key: str, *, verified: bool) -> None:
        """Count one request of ``key``; ApiError 429 with Retry-After when over its budget."""
        limiter = self.verified if verified else self.unverified
        wait = limiter.admit(key)
        if wait > 0.0:
            raise ApiError(
                ErrorKind.RATE_LIMITED,
                f"too many requests from this client: at most {limiter.rate_per_s:g}/s "
                f"(bursts of {limiter.burst}); retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def check_unverified(self, scope) -> None:
        """Count a request no verified caller could be named for, in its address's bucket."""
        self.check(address_key(scope), verified=False)


def address_key(scope) -> str:
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def _commerceml_key(scope) -> str | None:
    """The CommerceML session cookie (hashed: it is a credential) or the Basic user name."""
    headers = dict(scope["headers"])
    cookie = headers.get(b"cookie")
    if cookie:
        return "commerceml-session:" + hashlib.sha256(cookie).hexdigest()[:32]
    authorization = headers.get(b"authorization", b"")
    if authorization[:6].lower() == b"basic ":
        try:
            user = base64.b64decode(authorization[6:].strip(), validate=True).split(b":", 1)[0]
        except ValueError:
            return None
        return "commerceml-user:" + user[:200].decode("utf-8", "replace")
    return None


def client_key(scope) -> tuple[str, bool]:
    """(bucket key, verified) of a request the middleware limits."""
    principal = scope.get("state", {}).get("principal")
    if principal:
        return f"principal:{principal}", True
    if scope["path"].startswith(_COMMERCEML):
        key = _commerceml_key(scope)
        if key:
            return key, True
    return address_key(scope), False


class RateLimit:
    """Pure ASGI middleware: 429 ``rate_limited`` with Retry-After over a client's budget."""

    def __init__(self, app, settings: Settings, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits(settings)
        # The verified callers' limiter (tests and metrics read its size).
        self.limiter = self.limits.verified

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"].startswith(_EXEMPT_PREFIXES)
            or scope["path"] in SELF_LIMITED
        ):
            await self.app(scope, receive, send)
            return
        key, verified = client_key(scope)
        try:
            self.limits.check(key, verified=verified)
        except ApiError as exc:
            await send_error(scope, receive, send, exc)
            return
        await self.app(scope, receive, send)
