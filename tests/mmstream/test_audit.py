"""The audit trail against a real, migrated PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import create_engine, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream import audit
from mmstream.settings import Settings


def test_sync_record_is_readable_with_details(db_url):
    engine = create_engine(db_url, poolclass=pool.NullPool)
    row_id = audit.record_sync(
        engine, "alice", "groups.reset", "group-a", {"before": {"t:0": 5}, "after": {"t:0": 0}}
    )
    [entry] = audit.recent_sync(engine, target="group-a")
    assert entry.id == row_id
    assert (entry.actor, entry.action) == ("alice", "groups.reset")
    assert entry.details == {"before": {"t:0": 5}, "after": {"t:0": 0}}
    assert audit.recent_sync(engine, target="other") == []
    engine.dispose()


def test_async_record_on_a_connection_rolls_back_with_the_caller(db_url):
    async def scenario() -> tuple[int, int]:
        engine = create_async_engine(db_url, poolclass=pool.NullPool)
        await audit.record(engine, "bob", "dlq.replay", "topic-x", {"before": 1, "after": 2})
        async with engine.connect() as conn:
            await audit.record(conn, "bob", "dlq.replay", "topic-x", {})
            await conn.rollback()
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM ops_audit"))).scalar_one()
        await engine.dispose()
        return count, 1

    count, expected = asyncio.run(scenario())
    assert count == expected


def test_actor_prefers_the_configured_name():
    assert audit.actor(Settings(_env_file=None, ops={"actor": "oncall-bot"})) == "oncall-bot"
    assert audit.actor(Settings(_env_file=None)) != ""
