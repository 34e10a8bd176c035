"""The trace reads the DLQ topics (the real broker) and the audited replays of what it finds."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import create_engine

from mmstream import audit
from mmstream.db.engine import async_engine
from mmstream.trace.timeline import collect, dlq_rows
from tests.stages.dlq.conftest import parked, produce


def test_a_dead_lettered_and_replayed_change_shows_in_its_timeline(topics):
    settings = topics
    entity, other = str(uuid.uuid4()), str(uuid.uuid4())
    mine, _ = produce(
        settings, [parked(settings, key=entity, offset=4), parked(settings, key=other, offset=5)]
    )
    engine = create_engine(settings.require_database_url())
    try:
        audit.record_sync(
            engine,
            "ops-user",
            "dlq.replay",
            mine.topic,
            {
                "replay_id": "r-1",
                "outcome": "published",
                "before": {
                    "dlq_topic": mine.topic,
                    "offsets": {str(mine.partition): [[mine.offset, mine.offset]]},
                },
                "after": {},
            },
        )
    finally:
        engine.dispose()

    async def run():
        aengine = async_engine(settings, pool_size=1)
        try:
            return (
                await collect(aengine, entity, dlq=dlq_rows(settings, idle_timeout_s=5))
            ).as_dict()
        finally:
            await aengine.dispose()

    timeline = asyncio.run(run())
    steps = timeline["steps"]
    assert [s["kind"] for s in steps] == ["dlq", "replay"], steps
    assert steps[0]["details"]["key"] == entity and steps[0]["details"]["offset"] == mine.offset
    assert steps[0]["details"]["code"] == "invalid_record"
    assert steps[1]["details"]["actor"] == "ops-user"
