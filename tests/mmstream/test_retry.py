"""mmstream.retry's loops: the forever loop waits dependencies out, the bounded loop gives up
under the policy, both count mm_retries_total{stage, entity, code}. Pure: the sleep is a
recorder, so nothing waits. (The policy's own arithmetic: tests/stages/egress/test_retry.py.)"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from mmstream.errors import CircuitOpen, DatabaseUnavailable, InvalidRecord
from mmstream.retry import RetryPolicy, count_retry, retry_bounded, retry_forever


def retries(stage: str, entity: str, code: str) -> float:
    labels = {"stage": stage, "entity": entity, "code": code}
    return REGISTRY.get_sample_value("mm_retries_total", labels) or 0.0


class Flaky:
    """Fails with the given errors in turn, then answers ``done``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run(coro):
    return asyncio.run(coro)


def test_forever_waits_out_a_dependency_outage_and_counts_each_repeat():
    op, sleep = Flaky(*[DatabaseUnavailable("down")] * 30), Sleeps()
    before = retries("sink", "t-forever", "database_unavailable")
    result = run(
        retry_forever(
            op, stage="sink", what="merge", entity="t-forever", base_s=0.2, max_s=10.0, sleep=sleep
        )
    )
    assert result == "done" and op.calls == 31
    assert retries("sink", "t-forever", "database_unavailable") - before == 30
    # Full jitter under the exponential cap, never above max_s: past the cap's growth the
    # draws spread over [0, 10] instead of all sitting at 10.
    assert len(sleep.waits) == 30 and all(0 <= w <= 10.0 for w in sleep.waits)
    assert all(w <= 0.2 * 2**i for i, w in enumerate(sleep.waits[:5]))
    assert min(sleep.waits[10:]) < 9.0


def test_both_loops_await_what_a_lambda_returns():
    # Callers pass lambdas (lambda: producer.send(out)): the loop must await their coroutine,
    # retry its failure and return its result, not the coroutine itself.
    op = Flaky(DatabaseUnavailable("down"))
    assert (
        run(
            retry_forever(
                lambda: op(), stage="sink", what="publish", entity="t-lambda", sleep=Sleeps()
            )
        )
        == "done"
    )
    op = Flaky(DatabaseUnavailable("down"))
    assert (
        run(
            retry_bounded(
                lambda: op(), POLICY, stage="egress", what="call", entity="t-lambda", sleep=Sleeps()
            )
        )
        == "done"
    )
    assert op.calls == 2


def test_forever_raises_a_permanent_error_at_once_without_counting():
    op, sleep = Flaky(InvalidRecord("bad")), Sleeps()
    before = retries("sink", "t-permanent", "invalid_record")
    with pytest.raises(InvalidRecord):
        run(retry_forever(op, stage="sink", what="merge", entity="t-permanent", sleep=sleep))
    assert op.calls == 1 and sleep.waits == []
    assert retries("sink", "t-permanent", "invalid_record") == before


def test_forever_lets_cancellation_through():
    op = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        run(retry_forever(op, stage="sink", what="merge", entity="t-cancel", sleep=Sleeps()))
    assert op.calls == 1


POLICY = RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=30.0, budget_s=300.0)


def test_bounded_gives_up_after_the_policy_s_attempts_with_the_last_error():
    errors = [DatabaseUnavailable(f"down {i}") for i in range(10)]
    op, sleep = Flaky(*errors), Sleeps()
    before = retries("enrich", "t-bounded", "database_unavailable")
    with pytest.raises(DatabaseUnavailable) as raised:
        run(retry_bounded(op, POLICY, stage="enrich", what="read", entity="t-bounded", sleep=sleep))
    assert raised.value is errors[3] and op.calls == 4
    assert len(sleep.waits) == 3
    assert all(0 <= w <= POLICY.cap(i + 1) for i, w in enumerate(sleep.waits))
    assert retries("enrich", "t-bounded", "database_unavailable") - before == 3


def test_bounded_returns_once_a_repeat_succeeds():
    op, sleep = Flaky(DatabaseUnavailable("blip")), Sleeps()
    assert (
        run(retry_bounded(op, POLICY, stage="egress", what="call", entity="t-ok", sleep=sleep))
        == "done"
    )
    assert op.calls == 2 and len(sleep.waits) == 1


def test_bounded_waits_at_least_what_the_server_asked():
    op, sleep = Flaky(CircuitOpen("bitrix24", 42.0)), Sleeps()
    assert (
        run(retry_bounded(op, POLICY, stage="egress", what="call", entity="t-floor", sleep=sleep))
        == "done"
    )
    assert sleep.waits == [42.0]


def test_bounded_stops_when_the_server_s_wait_would_end_past_the_budget():
    tight = RetryPolicy(max_attempts=8, base_delay_s=0.5, max_delay_s=30.0, budget_s=10.0)
    op, sleep = Flaky(CircuitOpen("bitrix24", 60.0)), Sleeps()
    with pytest.raises(CircuitOpen):
        run(retry_bounded(op, tight, stage="egress", what="call", entity="t-budget", sleep=sleep))
    assert op.calls == 1 and sleep.waits == []


def test_bounded_raises_a_permanent_error_at_once():
    op, sleep = Flaky(InvalidRecord("bad"), DatabaseUnavailable("never reached")), Sleeps()
    with pytest.raises(InvalidRecord):
        run(retry_bounded(op, POLICY, stage="egress", what="call", entity="t-perm", sleep=sleep))
    assert op.calls == 1 and sleep.waits == []


def test_count_retry_labels_by_stage_entity_and_code():
    before = retries("egress", "t-count", "circuit_open")
    assert count_retry("egress", "t-count", CircuitOpen("onec", 1.0)) == "circuit_open"
    assert retries("egress", "t-count", "circuit_open") - before == 1
