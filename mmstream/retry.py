"""Retrying: the one policy, a bounded loop, a forever loop and ``mm_retries_total``.

Two kinds of failure are repeated, with different endings:

- a target system refusing or failing (Bitrix24, 1С): repeated under a :class:`RetryPolicy`
  (attempts and time budget) and then given up — :func:`retry_bounded`, or the policy's pure
  :meth:`RetryPolicy.should_retry` / :meth:`RetryPolicy.delay` where the caller does not
  sleep but parks the record on the delayed path (``stages.egress.delivery``);
- our own dependency (database, broker) being down: not the record's fault, so the work is
  repeated until the dependency is back, never dead-lettered — :func:`retry_forever`.

Whether an error is worth repeating at all is decided by its class
(``mmstream.errors.classify(error).retriable``), never here. Waits are exponential with FULL
jitter (a uniform draw between zero and the exponential cap): many workers failing together
would otherwise retry together and hit a rate-limited portal in waves. A wait the server
asked for (``retry_after``) is a floor, never cut by the jitter. The loops are tenacity's;
their ``sleep`` argument lets tests run them without waiting.

Every repeat counts in ``mm_retries_total{stage, entity, code}`` (mmstream.metrics.RETRIES).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_never,
    wait_random_exponential,
)

from mmstream.errors import classify
from mmstream.metrics import RETRIES
from mmstream.settings import RetrySettings

T = TypeVar("T")
log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]

# 2**60 seconds dwarfs any sane max_delay; stops float overflow for absurd attempt numbers.
_MAX_EXPONENT = 60


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits: attempts in total (the first included), backoff bounds and a time budget.

    Pure: no sleeping, no clock; callers pass the attempt count and the elapsed time.
    """

    max_attempts: int
    base_delay_s: float
    max_delay_s: float
    budget_s: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s <= 0 or self.max_delay_s <= 0 or self.budget_s <= 0:
            raise ValueError("delays and budget must be positive")
        if self.base_delay_s > self.max_delay_s:
            raise ValueError("base_delay_s must not exceed max_delay_s")

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        """The policy configured in ``Settings.retry``."""
        return cls(
            max_attempts=settings.max_attempts,
            base_delay_s=settings.base_delay_s,
            max_delay_s=settings.max_delay_s,
            budget_s=settings.budget_s,
        )

    def cap(self, attempt: int) -> float:
        """The upper bound of the jittered wait after failed attempt number ``attempt``."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return min(self.max_delay_s, self.base_delay_s * 2**exponent)

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1 = the first call failed).

        Uniform in [0, min(max_delay, base * 2**(attempt-1))]; at least ``retry_after``
        when the server named a wait, even above ``max_delay_s`` (waiting less only earns
        another refusal).
        """
        wait = (rng or random).uniform(0.0, self.cap(attempt))
        if retry_after is not None and retry_after > wait:
            wait = float(retry_after)
        return wait

    def should_retry(self, error: BaseException, attempt: int, elapsed_s: float) -> bool:
        """Whether to make another attempt after ``attempt`` attempts failed in ``elapsed_s``.

        No for permanent errors, when the attempts are used up, when the budget is spent,
        or when the wait the server demands would end past the budget.
        """
        classified = classify(error)
        if not classified.retriable:
            return False
        if attempt >= self.max_attempts or elapsed_s >= self.budget_s:
            return False
        retry_after = getattr(classified, "retry_after", None)
        if retry_after is not None and elapsed_s + retry_after > self.budget_s:
            return False
        return True


def count_retry(stage: str, entity: str, error: BaseException) -> str:
    """Count one repeat of ``stage``'s work for ``entity`` in mm_retries_total; its code."""
    code = classify(error).code
    RETRIES.labels(stage, entity, code).inc()
    return code


def _attempt(op: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``op`` as a coroutine function: tenacity awaits only what it recognises as one, and
    callers pass lambdas returning awaitables (it would hand back the unawaited coroutine)."""

    async def attempt() -> T:
        return await op()

    return attempt


def _retriable(error: BaseException) -> bool:
    # Only Exceptions are classified: cancellation and exits pass through untouched.
    return isinstance(error, Exception) and classify(error).retriable


def _failure(state: RetryCallState) -> BaseException:
    assert state.outcome is not None and state.outcome.failed
    error = state.outcome.exception()
    assert error is not None
    return error


def _announce(stage: str, entity: str, what: str) -> Callable[[RetryCallState], None]:
    """tenacity's before_sleep: count the repeat and say so in the log."""

    def before_sleep(state: RetryCallState) -> None:
        error = _failure(state)
        code = count_retry(stage, entity, error)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s failed, retrying",
            what,
            extra={
                "stage": stage,
                "entity": entity,
                "error_code": code,
                "error": str(error)[:300],
                "attempt": state.attempt_number,
                "retry_in_s": round(wait, 2),
            },
        )

    return before_sleep


async def retry_forever(
    op: Callable[[], Awaitable[T]],
    *,
    stage: str,
    what: str,
    entity: str,
    base_s: float = 0.2,
    max_s: float = 10.0,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``op`` until it succeeds or fails permanently (that error is raised).

    For our own dependencies (database, broker): their outage is waited out, with full-jitter
    waits up to ``max_s``.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception(_retriable),
        stop=stop_never,
        wait=wait_random_exponential(multiplier=base_s, max=max_s),
        before_sleep=_announce(stage, entity, what),
        sleep=sleep,
        reraise=True,
    )
    return await retrying(_attempt(op))


async def retry_bounded(
    op: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    stage: str,
    what: str,
    entity: str,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``op`` under ``policy``: its result, or the last error once the policy gives up.

    For calls to target systems: a permanent error is raised at once; a retriable one is
    repeated after ``policy.delay`` (the server's ``retry_after`` a floor) while
    ``policy.should_retry`` allows it (attempts, time budget).
    """

    def stop(state: RetryCallState) -> bool:
        return not policy.should_retry(
            _failure(state), state.attempt_number, state.seconds_since_start or 0.0
        )

    def wait(state: RetryCallState) -> float:
        retry_after = getattr(classify(_failure(state)), "retry_after", None)
        return policy.delay(state.attempt_number, retry_after=retry_after)

    retrying = AsyncRetrying(
        retry=retry_if_exception(_retriable),
        stop=stop,
        wait=wait,
        before_sleep=_announce(stage, entity, what),
        sleep=sleep,
        reraise=True,
    )
    return await retrying(_attempt(op))


__all__ = ["RetryPolicy", "count_retry", "retry_bounded", "retry_forever"]
