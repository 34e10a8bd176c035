"""Replays in the audit trail (real PostgreSQL): recorded, listed, and recognised again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from mmstream.dlq.entry import DlqEntry
from mmstream.kafka.producer import Delivered
from mmstream.topics import load_catalog
from stages.dlq import history
from stages.dlq.replay import build_plan
from stages.dlq.select import Selection
from tests.stages.dlq.conftest import parked


@pytest.fixture
def engine(settings):
    eng = create_engine(settings.require_database_url())
    yield eng
    eng.dispose()


def make_plan(settings, offsets, dlq="dlq.normalize"):
    catalog = load_catalog(settings.topics_file)
    cluster = {settings.topic(n): s.partitions for n, s in catalog.topics.items()}
    entries = [
        DlqEntry.build(settings.topic(dlq), 0, o, r.key, r.value, r.headers, None)
        for o in offsets
        for r in [parked(settings, offset=o, dlq=dlq)]
    ]
    return build_plan(
        settings, catalog, cluster, settings.topic(dlq), entries, Selection(entity="x")
    )


def test_a_replay_is_recorded_with_who_what_and_where(settings, engine):
    plan = make_plan(settings, [0, 1])
    sent = [Delivered(settings.topic("raw.onec.product"), 0, 40 + i) for i in range(2)]
    audit_id = history.record_replay(engine, "alice", plan, sent)
    [row] = history.past_replays(engine)
    assert row.id == audit_id and row.actor == "alice" and row.action == "dlq.replay"
    assert row.target == settings.topic("dlq.normalize")
    assert row.details["replay_id"] == plan.replay_id and row.details["records"] == 2
    assert row.details["selection"] == {"entity": "x"}
    assert row.details["after"] == {settings.topic("raw.onec.product"): {"0": [[40, 41]]}}


def test_past_replays_are_newest_first_and_filter_by_topic(settings, engine):
    first = history.record_replay(engine, "a", make_plan(settings, [0]), [])
    other = history.record_replay(
        engine, "b", make_plan(settings, [0], "dlq.egress.bitrix24.product"), []
    )
    third = history.record_replay(
        engine, "c", make_plan(settings, [1]), [], outcome="failed", error="x"
    )
    assert [r.id for r in history.past_replays(engine)] == [third, other, first]
    assert [r.id for r in history.past_replays(engine, settings.topic("dlq.normalize"))] == [
        third,
        first,
    ]
    assert history.past_replays(engine, limit=1)[0].details["outcome"] == "failed"


def test_earlier_replays_of_the_same_records_are_recognised(settings, engine):
    earlier = make_plan(settings, [0, 1, 2])
    history.record_replay(engine, "alice", earlier, [])
    assert history.earlier_replays_of(engine, make_plan(settings, [1, 2, 3])) == {
        earlier.replay_id: 2
    }
    assert history.earlier_replays_of(engine, make_plan(settings, [7])) == {}
    other_topic = make_plan(settings, [0], "dlq.egress.bitrix24.product")
    assert history.earlier_replays_of(engine, other_topic) == {}
