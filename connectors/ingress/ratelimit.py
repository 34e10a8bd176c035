"""Per-client rate limit at the bridge: a leaky bucket per caller, 429 + Retry-After over it.

The caller is the authenticated principal (token subject or API key name); requests without
a valid credential (routes that authenticate themselves, or refusals to be) share a bucket per
client address. Buckets live in the process: with N bridge replicas behind a load balancer a
client gets up to N times ``ingress.client_rate_per_s``. That is deliberate: the limit guards
each replica (and Kafka behind it) against one runaway source, not a billing quota, and a
shared limiter would put a network round trip on every request. Probes and metrics
(``/health/*``, ``/metrics``) are never limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from connectors.bitrix24.ratelimit import LeakyBucket
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.middleware import send_error
from mmstream.settings import Settings

_EXEMPT_PREFIXES = ("/health/", "/metrics")


class ClientLimiter:
    """One :class:`LeakyBucket` per client key, with idle buckets forgotten.

    Not thread-safe: one event loop owns an instance (as LeakyBucket).
    """

    def __init__(self, rate_per_s: float, burst: int, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
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


def client_key(scope) -> str:
    """The principal recorded by Authenticate, else the client's address."""
    state = scope.get("state", {})
    principal = state.get("principal")
    if principal:
        return f"principal:{principal}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


class RateLimit:
    """Pure ASGI middleware: 429 ``rate_limited`` with Retry-After over a client's budget."""

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.limiter = ClientLimiter(settings.ingress.client_rate_per_s, settings.ingress.client_burst)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.admit(client_key(scope))
        if wait > 0.0:
            await send_error(scope, receive, send, ApiError(
                ErrorKind.RATE_LIMITED,
                f"too many requests from this client: at most {self.limiter.rate_per_s:g}/s "
                f"(bursts of {self.limiter.burst}); retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))}))
            return
        await self.app(scope, receive, send)
