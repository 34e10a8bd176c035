"""Reset planning (pure) — kafka-consumer-groups semantics."""

from __future__ import annotations

import pytest

from mmstream.ops.errors import InvalidResetSpec
from mmstream.ops.reset import ResetTarget, parse_plan_csv, parse_topic, plan_rows

T = "t"
TPS = [(T, 0), (T, 1)]
STARTS = {(T, 0): 0, (T, 1): 10}
ENDS = {(T, 0): 100, (T, 1): 20}
COMMITTED = {(T, 0): 40}


def _after(target, **kw):
    return [(r.before, r.after) for r in plan_rows(target, TPS, COMMITTED, STARTS, ENDS, **kw)]


def test_earliest_latest_and_offset_with_clamping():
    assert _after(ResetTarget("earliest")) == [(40, 0), (None, 10)]
    assert _after(ResetTarget("latest")) == [(40, 100), (None, 20)]
    rows = plan_rows(ResetTarget("offset", 15), TPS, COMMITTED, STARTS, ENDS)
    assert [(r.after, bool(r.note)) for r in rows] == [(15, False), (15, False)]
    rows = plan_rows(ResetTarget("offset", 500), TPS, COMMITTED, STARTS, ENDS)
    assert [r.after for r in rows] == [100, 20] and "clamped" in rows[0].note


def test_shift_moves_from_the_committed_offset_and_needs_one():
    rows = plan_rows(ResetTarget("shift", -5), [(T, 0)], COMMITTED, STARTS, ENDS)
    assert (rows[0].before, rows[0].after) == (40, 35)
    with pytest.raises(InvalidResetSpec, match=r"t\[1\] has no committed offset"):
        plan_rows(ResetTarget("shift", -5), TPS, COMMITTED, STARTS, ENDS)
    rows = plan_rows(ResetTarget("shift", -500), [(T, 0)], COMMITTED, STARTS, ENDS)
    assert rows[0].after == 0


def test_time_targets_take_the_found_offsets():
    rows = plan_rows(
        ResetTarget("duration", "PT1H"),
        TPS,
        COMMITTED,
        STARTS,
        ENDS,
        by_time={(T, 0): 70, (T, 1): 20},
        scanned=frozenset({(T, 1)}),
    )
    assert [r.after for r in rows] == [70, 20]
    assert rows[1].note == "found by reading record timestamps"


def test_topic_argument():
    assert parse_topic("raw.onec.product") == ("raw.onec.product", None)
    assert parse_topic("raw.onec.product:2,0") == ("raw.onec.product", [0, 2])
    with pytest.raises(InvalidResetSpec):
        parse_topic("x:a")


def test_to_current_keeps_committed_and_takes_the_end_elsewhere():
    rows = plan_rows(ResetTarget("current"), TPS, COMMITTED, STARTS, ENDS)
    assert [(r.before, r.after) for r in rows] == [(40, 40), (None, 20)]
    assert rows[1].note == "no committed offset: the log end"


def test_csv_plans_as_kafka_consumer_groups_exports_them():
    assert parse_plan_csv("t,0,5\nt,1,7\n", "g") == {("t", 0): 5, ("t", 1): 7}
    assert parse_plan_csv("g,t,0,5\nh,t,0,9\n", "g") == {("t", 0): 5}  # the group's lines
    rows = plan_rows(
        ResetTarget("file", "p.csv", {("t", 0): 500, ("t", 1): 15}), TPS, COMMITTED, STARTS, ENDS
    )
    assert [r.after for r in rows] == [100, 15] and "clamped" in rows[0].note
    with pytest.raises(InvalidResetSpec, match="line 1"):
        parse_plan_csv("t,zero,5\n", "g")
    with pytest.raises(InvalidResetSpec, match="no offsets for group 'g'"):
        parse_plan_csv("h,t,0,5\n", "g")
