"""The circuit breaker's state machine on a fake clock, and its gauge and transition counter."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from mmstream.circuit import CircuitBreaker, State, Verdict
from mmstream.errors import CircuitOpen, InvalidRecord, TransientError


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Overloaded(Exception):
    """Stands for an error that proves the target refuses everyone."""


def verdict(exc: BaseException | None) -> Verdict:
    if isinstance(exc, Overloaded):
        return Verdict.TRIP
    if isinstance(exc, KeyError):
        return Verdict.NEUTRAL
    if exc is not None and isinstance(exc, TransientError):
        return Verdict.FAILURE
    return Verdict.SUCCESS


def breaker(clock: FakeClock, target: str, **kw) -> CircuitBreaker:
    kw.setdefault("failure_threshold", 3)
    kw.setdefault("cool_down_s", 10.0)
    kw.setdefault("max_cool_down_s", 40.0)
    return CircuitBreaker(target, verdict=verdict, clock=clock, **kw)


def fail(b: CircuitBreaker, exc: BaseException) -> None:
    with pytest.raises(type(exc)), b.guard():
        raise exc


def succeed(b: CircuitBreaker) -> None:
    with b.guard():
        pass


def gauge(target: str) -> float | None:
    return REGISTRY.get_sample_value("mm_egress_circuit_state", {"target": target})


def transitions(target: str, to: str) -> float:
    return (
        REGISTRY.get_sample_value("mm_circuit_transitions_total", {"target": target, "to": to})
        or 0.0
    )


def test_opens_after_n_consecutive_transient_failures_only():
    clock = FakeClock()
    b = breaker(clock, "t-consecutive")
    fail(b, TransientError("down"))
    fail(b, TransientError("down"))
    succeed(b)  # resets the count
    fail(b, TransientError("down"))
    fail(b, TransientError("down"))
    assert b.state is State.CLOSED
    fail(b, TransientError("down"))
    assert b.state is State.OPEN
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retriable and info.value.retry_after == pytest.approx(10.0)
    assert info.value.code == "circuit_open"


def test_permanent_errors_do_not_open_it():
    b = breaker(FakeClock(), "t-permanent")
    for _ in range(10):
        fail(b, InvalidRecord("bad input"))
    assert b.state is State.CLOSED


def test_trip_opens_at_once_and_neutral_counts_nothing():
    b = breaker(FakeClock(), "t-trip")
    for _ in range(5):
        fail(b, KeyError("token expired"))
    assert b.state is State.CLOSED
    fail(b, Overloaded())
    assert b.state is State.OPEN


def test_cool_down_then_exactly_one_probe():
    clock = FakeClock()
    b = breaker(clock, "t-probe")
    fail(b, Overloaded())
    clock.advance(9.5)
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert b.state is State.HALF_OPEN
    b.acquire()  # the probe
    with pytest.raises(CircuitOpen):
        b.acquire()  # everyone else waits for the probe
    b.record(None)
    assert b.state is State.CLOSED
    succeed(b)
    succeed(b)


def test_failed_probe_reopens_with_a_doubled_cool_down_capped():
    clock = FakeClock()
    b = breaker(clock, "t-reopen")
    fail(b, Overloaded())
    for expected in (20.0, 40.0, 40.0):
        clock.advance(1000)
        fail(b, TransientError("still down"))
        assert b.state is State.OPEN
        with pytest.raises(CircuitOpen) as info:
            b.check()
        assert info.value.retry_after == pytest.approx(expected)
    clock.advance(1000)
    succeed(b)
    assert b.state is State.CLOSED
    # Closed again: the cool-down is back to the base value.
    fail(b, Overloaded())
    with pytest.raises(CircuitOpen) as info:
        b.check()
    assert info.value.retry_after == pytest.approx(10.0)


def test_a_cancelled_probe_frees_the_slot():
    clock = FakeClock()
    b = breaker(clock, "t-cancel")
    fail(b, Overloaded())
    clock.advance(10)
    with pytest.raises(asyncio.CancelledError), b.guard():
        raise asyncio.CancelledError()
    assert b.state is State.HALF_OPEN
    b.acquire()  # a new probe may go


def test_a_slow_success_from_before_the_opening_does_not_close_it():
    clock = FakeClock()
    b = breaker(clock, "t-slow")
    b.acquire()  # a call starts while closed ...
    fail(b, Overloaded())  # ... another one trips the circuit ...
    b.record(None)  # ... and the first one returns fine afterwards
    assert b.state is State.OPEN


def test_state_gauge_and_transition_counter():
    clock = FakeClock()
    target = "t-metrics"
    b = breaker(clock, target)
    assert gauge(target) == 0
    fail(b, Overloaded())
    assert gauge(target) == 2
    clock.advance(10)
    assert b.state is State.HALF_OPEN and gauge(target) == 1
    succeed(b)
    assert gauge(target) == 0
    assert transitions(target, "open") == 1
    assert transitions(target, "half_open") == 1
    assert transitions(target, "closed") == 1
    assert (
        REGISTRY.get_sample_value(
            "mm_egress_circuit_opened_total", {"target": target, "reason": "permanent"}
        )
        == 1
    )


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", cool_down_s=10, max_cool_down_s=5)
