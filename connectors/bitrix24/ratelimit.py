"""The leaky bucket Bitrix24 applies to each portal, usable on both sides of the wire.

Every request pours one unit into the bucket; the bucket drains at ``rate_per_s`` and holds
``burst`` units. A request that would overflow it is refused (by the portal: HTTP 503
``QUERY_LIMIT_EXCEEDED``). The client keeps its own bucket so it waits instead of being
refused; the emulator keeps one to refuse exactly as the portal does.

The class is pure logic over an injectable clock, so its arithmetic is testable without
sleeping. It is not thread-safe: one event loop owns an instance.

:class:`PortalBudget` wraps the bucket with what a Bitrix24 client needs on top: this
worker's share of the portal's limit, slowing down after ``QUERY_LIMIT_EXCEEDED`` and
recovering step by step, and per-method blocks after ``OPERATION_TIME_LIMIT``.
:func:`shared_budget` hands every client of one portal in a process the same budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from mmstream.metrics import RATE_BUDGET

log = logging.getLogger(__name__)

# Float arithmetic on drained levels would otherwise leave a caller that waited exactly the
# advised time a few nanoseconds short of its slot.
_EPSILON = 1e-9

#: Bucket units a client leaves unused below its share of the portal's burst (see
#: PortalBudget._share_burst).
BURST_HEADROOM = 2


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


# Bitrix24 accounts method time in 10-minute windows; a time-limit answer without
# operating_reset_at blocks the method for this long.
_DEFAULT_METHOD_BLOCK_S = 600.0
# The slowest a refused client goes: a twentieth of its share.
_MIN_FRACTION = 0.05


class PortalBudget:
    """One portal's request budget in this process, shared by every client of the portal.

    The portal allows ``rate_per_s`` with a burst of ``burst`` for ALL callers together, so
    a worker takes 1/N of both when N workers share the portal. After a
    ``QUERY_LIMIT_EXCEEDED`` someone else is using the portal too: the bucket is held full
    (no burst) and the rate drops by ``backoff_factor``; every second without a refusal
    gives back ``recovery_per_s`` of the full rate (additive increase).
    """

    def __init__(
        self,
        target: str,
        rate_per_s: float,
        burst: int,
        *,
        workers: int = 1,
        backoff_factor: float = 0.5,
        recovery_per_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < backoff_factor < 1 or recovery_per_s <= 0:
            raise ValueError("need 0 < backoff_factor < 1 and recovery_per_s > 0")
        self.target = target
        self.full_rate_per_s = float(rate_per_s)
        self.full_burst = int(burst)
        self.backoff_factor = backoff_factor
        self.recovery_per_s = recovery_per_s
        self._clock = clock
        self._workers = max(1, int(workers))
        self._fraction = 1.0
        self._fraction_at = clock()
        self._blocked_until: dict[str, float] = {}
        self.bucket = LeakyBucket(self._share_rate(), self._share_burst(), clock)
        self._follower: asyncio.Task[None] | None = None
        RATE_BUDGET.labels(target).set(self.bucket.rate_per_s)

    @property
    def workers(self) -> int:
        """How many workers share the portal (this one included)."""
        return self._workers

    @property
    def rate_per_s(self) -> float:
        """The rate this process allows itself now."""
        self._recover()
        return self.bucket.rate_per_s

    def set_workers(self, workers: int) -> None:
        """Re-split the portal's limit: this worker takes 1/``workers`` of it."""
        workers = max(1, int(workers))
        if workers == self._workers:
            return
        log.info("bitrix24 budget re-split", extra={"target": self.target, "workers": workers})
        self._workers = workers
        self._apply()

    async def acquire(self) -> None:
        """Wait for one request slot."""
        while True:
            self._recover()
            wait = self.bucket.try_acquire()
            if wait <= 0.0:
                return
            # Sleep at most a second: recovery may speed the bucket up meanwhile.
            await asyncio.sleep(min(wait, 1.0))

    def on_query_limit(self) -> None:
        """The portal refused a call for its rate: drain our burst and slow down."""
        self._recover()
        self._fraction = max(_MIN_FRACTION, self._fraction * self.backoff_factor)
        self._fraction_at = self._clock()
        self._apply()
        self.bucket.penalize(1.0 / self.bucket.rate_per_s)
        log.warning("bitrix24 rate limit hit, slowing down",
                    extra={"target": self.target, "rate_per_s": round(self.bucket.rate_per_s, 3)})

    def block_method(self, method: str, seconds: float | None) -> None:
        """``method`` used up its time budget: refuse it locally for ``seconds``."""
        wait = _DEFAULT_METHOD_BLOCK_S if seconds is None else max(0.0, seconds)
        until = self._clock() + wait
        method = method.lower()
        self._blocked_until[method] = max(self._blocked_until.get(method, 0.0), until)
        log.warning("bitrix24 method blocked by its time limit",
                    extra={"target": self.target, "method": method, "seconds": round(wait, 1)})

    def blocked_for(self, method: str) -> float:
        """Seconds until ``method`` may be called again (0.0: it may now)."""
        method = method.lower()
        until = self._blocked_until.get(method)
        if until is None:
            return 0.0
        remaining = until - self._clock()
        if remaining <= 0:
            del self._blocked_until[method]
            return 0.0
        return remaining

    def follow_workers(self, probe: Callable[[], Awaitable[int | None]],
                       interval_s: float = 30.0) -> None:
        """Re-split every ``interval_s`` by what ``probe`` says (None: unknown, keep)."""
        if self._follower is not None and not self._follower.done():
            return

        async def follow() -> None:
            while True:
                try:
                    count = await probe()
                except Exception as exc:  # noqa: BLE001 — keep the last known split
                    log.warning("cannot count the group's workers",
                                extra={"target": self.target, "error": str(exc)[:200]})
                    count = None
                if count:
                    self.set_workers(count)
                await asyncio.sleep(interval_s)

        self._follower = asyncio.get_running_loop().create_task(follow())

    def close(self) -> None:
        """Stop following the worker count."""
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None

    def _share_rate(self) -> float:
        return self.full_rate_per_s * self._fraction / self._workers

    def _share_burst(self) -> int:
        # The portal counts a request when it arrives, we count it when we send it: network
        # jitter brings two of ours closer together than we sent them, and a full bucket
        # then refuses one (and the refusal halves our rate). A little headroom absorbs it.
        share = self.full_burst // self._workers
        return max(1, share - BURST_HEADROOM if share > 2 * BURST_HEADROOM else share)

    def _apply(self) -> None:
        self.bucket.resize(self._share_rate(), self._share_burst())
        RATE_BUDGET.labels(self.target).set(self.bucket.rate_per_s)

    def _recover(self) -> None:
        if self._fraction >= 1.0:
            return
        now = self._clock()
        elapsed = now - self._fraction_at
        if elapsed <= 0:
            return
        self._fraction = min(1.0, self._fraction + elapsed * self.recovery_per_s)
        self._fraction_at = now
        self._apply()


# loop -> key -> budget: one event loop owns a budget (as LeakyBucket), and a process has
# one loop per worker; tests running asyncio.run() each get fresh budgets.
_BUDGETS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, PortalBudget]] = (
    weakref.WeakKeyDictionary()
)


def shared_budget(target: str, rate_per_s: float, burst: int, *, scope: str = "",
                  **options: Any) -> PortalBudget:
    """The budget every client of ``target`` (one portal: ``scope``) on the running event
    loop shares.

    Clients asking with other limits (tests do) get a budget of their own. Without a running
    loop a private budget is returned.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return PortalBudget(target, rate_per_s, burst, **options)
    key = (target, scope, rate_per_s, burst, tuple(sorted(options.items())))
    budgets = _BUDGETS.setdefault(loop, {})
    budget = budgets.get(key)
    if budget is None:
        budget = budgets[key] = PortalBudget(target, rate_per_s, burst, **options)
    return budget


async def kafka_group_size(kafka: Any, group: str, timeout_s: float = 10.0) -> int | None:
    """Members of consumer group ``group`` (``kafka``: KafkaSettings), None when unknown.

    Brokers that do not report members (the embedded one lists none) give None, and the
    budget keeps its last split.
    """
    from mmstream.kafka.lag import admin_for

    def describe() -> int | None:
        # admin_for routes librdkafka's own log lines through logging: raw stderr lines
        # would break the one-JSON-object-per-line log contract.
        admin = admin_for(kafka)
        futures = admin.describe_consumer_groups([group], request_timeout=timeout_s)
        description = futures[group].result(timeout=timeout_s)
        return len(description.members) or None

    return await asyncio.to_thread(describe)
