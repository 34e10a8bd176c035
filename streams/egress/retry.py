"""When and how long to wait before repeating a failed call to a target system.

Exponential backoff with FULL jitter (a uniform draw between zero and the exponential
cap): many workers failing together would otherwise retry together and hit a rate-limited
portal in waves. A wait the server asked for (``retry_after``) is a floor, never cut by the
jitter. Whether an error is worth repeating at all is not decided here but by the error's
class (``mmstream.errors.classify(error).retriable``); this module only adds the attempt
and time limits. Pure: no sleeping, no clock; callers pass the attempt count and elapsed time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mmstream.errors import classify
from mmstream.settings import RetrySettings

# 2**60 seconds dwarfs any sane max_delay; stops float overflow for absurd attempt numbers.
_MAX_EXPONENT = 60


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits: attempts in total (the first included), backoff bounds and a time budget."""

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
        return min(self.max_delay_s, self.base_delay_s * 2 ** exponent)

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


__all__ = ["RetryPolicy"]
