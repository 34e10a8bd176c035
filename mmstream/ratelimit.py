"""A leaky bucket over an injectable clock: the rate limiter of the Bitrix24 client, of the
bridge (per client) and of the Bitrix24 emulator (refusing exactly as the portal does).

Every request pours one unit into the bucket; the bucket drains at ``rate_per_s`` and holds
``burst`` units; a request that would overflow it waits (or is refused). Pure logic over the
clock, so its arithmetic is testable without sleeping. It is not thread-safe: one event loop
owns an instance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Float arithmetic on drained levels would otherwise leave a caller that waited exactly the
# advised time a few nanoseconds short of its slot.
_EPSILON = 1e-9


class LeakyBucket:
    """A leaky bucket of capacity ``burst`` draining at ``rate_per_s`` units per second."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)
        self._clock = clock
        self._level = 0.0
        self._updated = clock()

    @property
    def level(self) -> float:
        """Units in the bucket now (may exceed ``burst`` right after :meth:`penalize`)."""
        self._drain()
        return self._level

    def try_acquire(self, n: int = 1) -> float:
        """Take ``n`` slots and return 0.0, or return the seconds to wait and take nothing."""
        if n < 1:
            raise ValueError("n must be at least 1")
        if n > self.burst:
            # Would wait forever: no amount of draining makes room for more than the capacity.
            raise ValueError(f"cannot acquire {n} slots from a bucket of {self.burst}")
        self._drain()
        overflow = self._level + n - self.burst
        if overflow <= _EPSILON:
            self._level += n
            return 0.0
        return overflow / self.rate_per_s

    async def acquire(self, n: int = 1) -> None:
        """Wait (``asyncio.sleep``) until ``n`` slots are free, then take them."""
        while True:
            wait = self.try_acquire(n)
            if wait <= 0.0:
                return
            # Loop rather than take blindly after sleeping: another task may have taken the
            # slot meanwhile, or a penalty may have arrived.
            await asyncio.sleep(wait)

    def penalize(self, seconds: float = 0.0) -> None:
        """Treat the bucket as full and keep it full for ``seconds`` more.

        Called after the server answered ``QUERY_LIMIT_EXCEEDED``: its bucket is fuller
        than ours (other clients share the portal), so ours must stop handing out slots.
        Penalties do not stack; the longer one wins.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._drain()
        self._level = max(self._level, self.burst + seconds * self.rate_per_s)

    def resize(self, rate_per_s: float, burst: int) -> None:
        """Change the drain rate and capacity from now on (what already drained stays so)."""
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._drain()
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)

    def reset(self) -> None:
        """Empty the bucket."""
        self._level = 0.0
        self._updated = self._clock()

    def _drain(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._updated = now
        # A clock that steps back (an injected one may) must not refill the bucket.
        if elapsed > 0:
            self._level = max(0.0, self._level - elapsed * self.rate_per_s)
