"""A Bitrix24 portal's request budget on the client side.

The portal applies a leaky bucket (:class:`mmstream.ratelimit.LeakyBucket`) to all its
callers together and refuses a request that would overflow it (HTTP 503
``QUERY_LIMIT_EXCEEDED``). The client keeps its own bucket so it waits instead of being
refused.

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
from mmstream.ratelimit import LeakyBucket

log = logging.getLogger(__name__)

#: Bucket units a client leaves unused below its share of the portal's burst (see
#: PortalBudget._share_burst).
BURST_HEADROOM = 2


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
        log.warning(
            "bitrix24 rate limit hit, slowing down",
            extra={"target": self.target, "rate_per_s": round(self.bucket.rate_per_s, 3)},
        )

    def block_method(self, method: str, seconds: float | None) -> None:
        """``method`` used up its time budget: refuse it locally for ``seconds``."""
        wait = _DEFAULT_METHOD_BLOCK_S if seconds is None else max(0.0, seconds)
        until = self._clock() + wait
        method = method.lower()
        self._blocked_until[method] = max(self._blocked_until.get(method, 0.0), until)
        log.warning(
            "bitrix24 method blocked by its time limit",
            extra={"target": self.target, "method": method, "seconds": round(wait, 1)},
        )

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

    def follow_workers(
        self, probe: Callable[[], Awaitable[int | None]], interval_s: float = 30.0
    ) -> None:
        """Re-split every ``interval_s`` by what ``probe`` says (None: unknown, keep)."""
        if self._follower is not None and not self._follower.done():
            return

        async def follow() -> None:
            while True:
                try:
                    count = await probe()
                except Exception as exc:  # noqa: BLE001 — keep the last known split
                    log.warning(
                        "cannot count the group's workers",
                        extra={"target": self.target, "error": str(exc)[:200]},
                    )
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


def shared_budget(
    target: str, rate_per_s: float, burst: int, *, scope: str = "", **options: Any
) -> PortalBudget:
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
