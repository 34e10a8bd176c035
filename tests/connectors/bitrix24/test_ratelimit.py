"""The leaky bucket: burst, drain rate, advised waits and penalties, on a fake clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from connectors.bitrix24.ratelimit import LeakyBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_burst_is_granted_at_once_then_refused():
    clock = FakeClock()
    bucket = LeakyBucket(2.0, 50, clock=clock)
    assert [bucket.try_acquire() for _ in range(50)] == [0.0] * 50
    assert bucket.try_acquire() == pytest.approx(0.5)


def test_refusal_takes_nothing():
    clock = FakeClock()
    bucket = LeakyBucket(2.0, 3, clock=clock)
    for _ in range(3):
        bucket.try_acquire()
    waits = [bucket.try_acquire() for _ in range(5)]
    # Asking again and again does not push the wait further out.
    assert waits == [pytest.approx(0.5)] * 5
    assert bucket.level == pytest.approx(3.0)


def test_drains_at_rate_after_burst():
    clock = FakeClock()
    bucket = LeakyBucket(2.0, 10, clock=clock)
    for _ in range(10):
        assert bucket.try_acquire() == 0.0
    clock.advance(0.49)
    assert bucket.try_acquire() > 0
    clock.advance(0.01)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)
    # Ten idle seconds at 2/s free twenty slots, but never more than the capacity.
    clock.advance(10)
    granted = 0
    while bucket.try_acquire() == 0.0:
        granted += 1
    assert granted == 10


def test_waiting_the_advised_time_is_enough():
    clock = FakeClock()
    bucket = LeakyBucket(3.0, 5, clock=clock)
    for _ in range(5):
        bucket.try_acquire()
    for _ in range(20):
        wait = bucket.try_acquire()
        assert wait > 0
        clock.advance(wait)
        assert bucket.try_acquire() == 0.0


def test_wait_for_several_slots():
    clock = FakeClock()
    bucket = LeakyBucket(2.0, 50, clock=clock)
    for _ in range(50):
        bucket.try_acquire()
    assert bucket.try_acquire(3) == pytest.approx(1.5)
    clock.advance(1.0)
    assert bucket.try_acquire(3) == pytest.approx(0.5)
    assert bucket.try_acquire(2) == 0.0


def test_invalid_arguments():
    with pytest.raises(ValueError):
        LeakyBucket(0, 5)
    with pytest.raises(ValueError):
        LeakyBucket(1.0, 0)
    bucket = LeakyBucket(1.0, 5, clock=FakeClock())
    with pytest.raises(ValueError):
        bucket.try_acquire(6)
    with pytest.raises(ValueError):
        bucket.try_acquire(0)
    with pytest.raises(ValueError):
        bucket.penalize(-1)


def test_penalize_fills_the_bucket():
    clock = FakeClock()
    bucket = LeakyBucket(2.0, 50, clock=clock)
    bucket.try_acquire()
    bucket.penalize()
    assert bucket.try_acquire() == pytest.approx(0.5)


def test_penalize_holds_the_bucket_full_for_the_given_time():
    clock = FakeClock()
    bucket = LeakyBucket(2.0, 50, clock=clock)
    bucket.penalize(3.0)
    assert bucket.try_acquire() == pytest.approx(3.5)
    clock.advance(3.0)
    assert bucket.try_acquire() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.try_acquire() == 0.0


def test_penalties_do_not_stack():
    clock = FakeClock()
    bucket = LeakyBucket(2.0, 50, clock=clock)
    bucket.penalize(3.0)
    bucket.penalize(1.0)
    assert bucket.try_acquire() == pytest.approx(3.5)
    bucket.penalize(3.0)
    assert bucket.try_acquire() == pytest.approx(3.5)


def test_clock_stepping_back_does_not_refill():
    clock = FakeClock()
    bucket = LeakyBucket(1.0, 2, clock=clock)
    bucket.try_acquire()
    bucket.try_acquire()
    clock.advance(-100)
    assert bucket.try_acquire() == pytest.approx(1.0)


def test_reset_empties():
    bucket = LeakyBucket(1.0, 2, clock=FakeClock())
    bucket.penalize(10)
    bucket.reset()
    assert bucket.try_acquire(2) == 0.0


def test_acquire_sleeps_until_a_slot_frees():
    async def scenario() -> list[float]:
        bucket = LeakyBucket(50.0, 2)
        start = time.monotonic()
        stamps = []
        for _ in range(5):
            await bucket.acquire()
            stamps.append(time.monotonic() - start)
        return stamps

    stamps = asyncio.run(scenario())
    # Two at once (proven on the fake clock above), then one every 20 ms.
    assert stamps[2] >= 0.019
    assert stamps[4] >= 0.059


def test_concurrent_acquirers_share_the_rate():
    async def scenario() -> float:
        bucket = LeakyBucket(100.0, 1)
        start = time.monotonic()
        await asyncio.gather(*(bucket.acquire() for _ in range(6)))
        return time.monotonic() - start

    # Six callers through a bucket of one at 100/s cannot all pass in under 50 ms.
    assert asyncio.run(scenario()) >= 0.049
