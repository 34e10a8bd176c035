"""A circuit breaker per target system: stop calling a target that is down or blocked us.

States: CLOSED (calls pass; consecutive transient failures are counted), OPEN (no call
passes; :class:`~mmstream.errors.CircuitOpen` with ``retry_after`` is raised instead) and
HALF_OPEN (after the cool-down, exactly ONE probe call passes; its outcome closes the
circuit or opens it again with a doubled cool-down). A failure that proves the target
refuses everyone (e.g. Bitrix24's ``OVERLOAD_LIMIT``) opens it at once.

The breaker judges outcomes through a verdict function, so it stays generic: the default
counts retriable errors (``classify(exc).retriable``) as failures and anything else as a
sign the target is alive (a validation refusal is an answer). Pure logic over an
injectable clock; one event loop owns an instance.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mmstream.errors import CircuitOpen, classify
from mmstream.metrics import CIRCUIT_OPENED, CIRCUIT_STATE, CIRCUIT_TRANSITIONS

log = logging.getLogger(__name__)


class State(enum.IntEnum):
    """Circuit states; the values are what the ``mm_egress_circuit_state`` gauge shows
    (ordered by severity, so alerts compare with ``>=``)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Verdict(enum.Enum):
    """How one call's outcome counts for the breaker."""

    SUCCESS = "success"  # the target answered: reset the failure count, close when probing
    FAILURE = "failure"  # transient failure: counts toward opening
    TRIP = "trip"  # the target refuses everyone: open now
    NEUTRAL = "neutral"  # says nothing about the target's health (e.g. our token expired)


def default_verdict(exc: BaseException | None) -> Verdict:
    """SUCCESS without an error, FAILURE for retriable errors, SUCCESS for the rest."""
    if exc is None:
        return Verdict.SUCCESS
    return Verdict.FAILURE if classify(exc).retriable else Verdict.SUCCESS


class CircuitBreaker:
    """The breaker of one target (one name, one gauge series)."""

    def __init__(
        self,
        target: str,
        *,
        failure_threshold: int = 5,
        cool_down_s: float = 30.0,
        max_cool_down_s: float = 300.0,
        verdict: Callable[[BaseException | None], Verdict] = default_verdict,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down_s <= 0 or max_cool_down_s < cool_down_s:
            raise ValueError("need 0 < cool_down_s <= max_cool_down_s")
        self.target = target
        self.failure_threshold = failure_threshold
        self.base_cool_down_s = cool_down_s
        self.max_cool_down_s = max_cool_down_s
        self._verdict = verdict
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._cool_down_s = cool_down_s
        self._opened_at = 0.0
        self._probing = False
        CIRCUIT_STATE.labels(target).set(State.CLOSED)

    @property
    def state(self) -> State:
        """The state now (an open circuit whose cool-down passed reads HALF_OPEN)."""
        if self._state is State.OPEN and self._remaining() <= 0:
            self._move(State.HALF_OPEN)
        return self._state

    def check(self) -> None:
        """Raise CircuitOpen unless a call could pass now (claims nothing)."""
        state = self.state
        if state is State.OPEN:
            raise CircuitOpen(self.target, self._remaining())
        if state is State.HALF_OPEN and self._probing:
            raise CircuitOpen(self.target, self._probe_wait())

    def acquire(self) -> None:
        """Claim the right to make one call, or raise CircuitOpen.

        In HALF_OPEN the first caller becomes the probe; every call that passes must be
        followed by :meth:`record` (or :meth:`release` when it ended without an outcome).
        """
        self.check()
        if self._state is State.HALF_OPEN:
            self._probing = True

    def record(self, exc: BaseException | None) -> None:
        """Account the outcome of a call that :meth:`acquire` let through."""
        verdict = self._verdict(exc)
        was_probe, self._probing = self._probing and self._state is State.HALF_OPEN, False
        if verdict is Verdict.NEUTRAL:
            return
        if verdict is Verdict.SUCCESS:
            self._failures = 0
            # Only the probe closes: a slow call that started before the circuit opened
            # proves nothing about the target now.
            if was_probe:
                self._cool_down_s = self.base_cool_down_s
                self._move(State.CLOSED)
            return
        if verdict is Verdict.TRIP:
            self._open(exc, why="opens the circuit at once")
            return
        self._failures += 1
        if was_probe:
            # The target is still failing: wait longer before the next probe.
            self._cool_down_s = min(self._cool_down_s * 2, self.max_cool_down_s)
            self._open(exc, why="half-open probe failed")
        elif self._state is State.CLOSED and self._failures >= self.failure_threshold:
            self._open(exc, why=f"{self._failures} consecutive failures")

    def release(self) -> None:
        """Give back a probe slot whose call ended without an outcome (cancelled)."""
        self._probing = False

    @contextmanager
    def guard(self) -> Iterator[None]:
        """``with breaker.guard(): await call()`` — acquire, then record the outcome."""
        self.acquire()
        try:
            yield
        except Exception as exc:
            self.record(exc)
            raise
        except BaseException:
            # Cancellation or shutdown: the call says nothing about the target.
            self.release()
            raise
        self.record(None)

    def _open(self, exc: BaseException | None, *, why: str) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._move(State.OPEN)
        # The reason label is the error's code: a closed set.
        code = classify(exc).code if exc is not None else "unknown"
        CIRCUIT_OPENED.labels(self.target, code).inc()
        log.warning(
            "circuit opened",
            extra={
                "target": self.target,
                "reason": why,
                "error_code": code,
                "cool_down_s": self._cool_down_s,
            },
        )

    def _remaining(self) -> float:
        return max(0.0, self._opened_at + self._cool_down_s - self._clock())

    def _probe_wait(self) -> float:
        # Another caller's probe is in flight; it usually settles the state within seconds.
        return min(1.0, self._cool_down_s)

    def _move(self, state: State) -> None:
        if state is self._state:
            return
        self._state = state
        CIRCUIT_STATE.labels(self.target).set(state)
        CIRCUIT_TRANSITIONS.labels(self.target, state.name.lower()).inc()
        if state is State.CLOSED:
            log.info("circuit closed", extra={"target": self.target})


# loop -> (target, options) -> breaker: every client of a target on one event loop (one
# worker) shares its breaker; tests running asyncio.run() each get fresh ones.
_BREAKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, CircuitBreaker]] = (
    weakref.WeakKeyDictionary()
)


def shared_breaker(target: str, *, scope: str = "", **options: Any) -> CircuitBreaker:
    """The breaker every caller of ``target`` (one instance of it: ``scope``) on the running
    event loop shares (a private one without a running loop). Callers passing other
    options get their own."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return CircuitBreaker(target, **options)
    key = (target, scope, tuple(sorted(options.items(), key=lambda kv: kv[0])))
    breakers = _BREAKERS.setdefault(loop, {})
    breaker = breakers.get(key)
    if breaker is None:
        breaker = breakers[key] = CircuitBreaker(target, **options)
    return breaker


__all__ = ["CircuitBreaker", "State", "Verdict", "default_verdict", "shared_breaker"]
