"""RetryPolicy: full-jitter backoff bounds, server-given floors, and when to give up."""

from __future__ import annotations

import random

import pytest

from connectors.bitrix24.errors import (
    AccessDenied,
    AuthFailed,
    InvalidRequest,
    OperationTimeLimit,
    OverloadLimit,
    PortalDeleted,
    QueryLimitExceeded,
    ServerError,
    TransportError,
    error_from_response,
)
from mmstream.errors import BrokerUnavailable, InvalidRecord
from mmstream.retry import RetryPolicy
from mmstream.settings import RetrySettings

POLICY = RetryPolicy(max_attempts=8, base_delay_s=0.5, max_delay_s=30.0, budget_s=300.0)


def samples(policy: RetryPolicy, attempt: int, n: int = 400, **kwargs) -> list[float]:
    rng = random.Random(attempt)
    return [policy.delay(attempt, rng=rng, **kwargs) for _ in range(n)]


def test_from_settings_copies_the_fields():
    settings = RetrySettings(max_attempts=3, base_delay_s=0.1, max_delay_s=2.0, budget_s=9.0)
    assert RetryPolicy.from_settings(settings) == RetryPolicy(3, 0.1, 2.0, 9.0)
    assert RetryPolicy.from_settings(RetrySettings()) == POLICY


def test_invalid_policies_are_rejected():
    with pytest.raises(ValueError):
        RetryPolicy(0, 0.5, 30, 300)
    with pytest.raises(ValueError):
        RetryPolicy(3, 5.0, 1.0, 300)
    with pytest.raises(ValueError):
        RetryPolicy(3, 0.5, 30, 0)
    with pytest.raises(ValueError):
        POLICY.delay(0)


@pytest.mark.parametrize(
    "attempt,cap", [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (8, 30.0)]
)
def test_delays_stay_within_zero_and_the_exponential_cap(attempt, cap):
    assert POLICY.cap(attempt) == cap
    drawn = samples(POLICY, attempt)
    assert all(0.0 <= d <= cap for d in drawn)
    # Full jitter: the whole range is used, not just its top.
    assert min(drawn) < cap * 0.1
    assert max(drawn) > cap * 0.9


def test_delays_grow_with_attempts():
    means = [sum(samples(POLICY, a)) / 400 for a in range(1, 7)]
    assert means == sorted(means)
    assert means[-1] > 8 * means[0]


def test_delays_are_capped_even_for_huge_attempt_numbers():
    for attempt in (50, 1_000, 10_000_000):
        assert all(0.0 <= d <= 30.0 for d in samples(POLICY, attempt, n=50))


def test_the_same_rng_gives_the_same_delays():
    assert samples(POLICY, 3) == samples(POLICY, 3)


def test_retry_after_is_a_floor():
    # Above max_delay too: waiting less than the server said only earns another refusal.
    assert all(d == 45.0 for d in samples(POLICY, 1, retry_after=45.0))
    drawn = samples(POLICY, 6, retry_after=4.0)
    assert all(4.0 <= d <= 16.0 for d in drawn)
    # A small floor leaves larger jittered draws untouched.
    assert samples(POLICY, 6, retry_after=0.001) == [max(d, 0.001) for d in samples(POLICY, 6)]


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest(400, "", "Not found"),
        AuthFailed(401, "NO_AUTH_FOUND", ""),
        AccessDenied(403, "ACCESS_DENIED", ""),
        PortalDeleted(403, "PORTAL_DELETED", ""),
        InvalidRecord("bad payload"),
        ValueError("a bug"),
        KeyError("field"),
    ],
)
def test_permanent_errors_are_never_retried(error):
    assert not POLICY.should_retry(error, attempt=1, elapsed_s=0.0)


@pytest.mark.parametrize(
    "error",
    [
        QueryLimitExceeded(503, "QUERY_LIMIT_EXCEEDED", ""),
        ServerError(500, "INTERNAL_SERVER_ERROR", ""),
        TransportError(None, "ConnectError", ""),
        OperationTimeLimit(429, "OPERATION_TIME_LIMIT", ""),
        # Waits behind the open circuit instead of going to the DLQ (the circuit stops the
        # hammering, the alert calls the operator).
        OverloadLimit(503, "OVERLOAD_LIMIT", ""),
        BrokerUnavailable("no ack"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
    ],
)
def test_transient_errors_are_retried(error):
    assert POLICY.should_retry(error, attempt=1, elapsed_s=0.0)


def test_attempts_are_bounded():
    error = ServerError(500, "INTERNAL_SERVER_ERROR", "")
    assert POLICY.should_retry(error, attempt=7, elapsed_s=1.0)
    assert not POLICY.should_retry(error, attempt=8, elapsed_s=1.0)
    assert not POLICY.should_retry(error, attempt=9, elapsed_s=1.0)
    single = RetryPolicy(1, 0.5, 30, 300)
    assert not single.should_retry(error, attempt=1, elapsed_s=0.0)


def test_time_budget_is_respected():
    error = TransportError(None, "ReadTimeout", "")
    assert POLICY.should_retry(error, attempt=2, elapsed_s=299.9)
    assert not POLICY.should_retry(error, attempt=2, elapsed_s=300.0)
    assert not POLICY.should_retry(error, attempt=2, elapsed_s=1000.0)


def test_a_server_wait_past_the_budget_ends_retrying():
    body = {
        "error": "OPERATION_TIME_LIMIT",
        "error_description": "",
        "time": {"operating_reset_at": 1_000_600},
    }
    soon = error_from_response(429, body, now=1_000_590.0)  # 10 s to wait
    late = error_from_response(429, body, now=1_000_000.0)  # 600 s to wait
    assert POLICY.should_retry(soon, attempt=1, elapsed_s=100.0)
    assert not POLICY.should_retry(late, attempt=1, elapsed_s=0.0)
    assert not POLICY.should_retry(soon, attempt=1, elapsed_s=295.0)
    assert POLICY.delay(1, retry_after=soon.retry_after, rng=random.Random(0)) >= 10.0
