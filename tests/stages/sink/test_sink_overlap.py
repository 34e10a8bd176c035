"""Two batches handled side by side (the entity sink worker's two takes in flight): the later
batch is merged while the earlier one publishes, and its changes still go out after the
earlier ones, each once. Real broker, PostgreSQL and schema registry."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.stages.sink.harness import run, sink_settings, sql, warehouse
from tests.support.topics import count_records

V2 = "AAAAAgAAAAA="


@pytest.fixture
def s(settings, registry_url):
    return sink_settings(settings, registry_url)


def test_the_next_batch_merges_while_this_one_publishes_and_publishes_after_it(s):
    first = warehouse(name="Склад, версия 1")
    second = warehouse(ref=first["Ref_Key"], name="Склад, версия 2", version=V2)
    events: list[str] = []

    async def scenario(sinks):
        send_many = sinks.producer.send_many
        merge = sinks.entities._store

        async def slow_first_send(records):
            # The first batch's changes reach the broker slowly: time for the next merge.
            if "first sent" not in events and records:
                events.append("first publishing")
                await asyncio.sleep(0.5)
                events.append("first sent")
            return await send_many(records)

        async def store(items):
            events.append(f"merge {items[0].entity.name}")
            return await merge(items)

        sinks.producer.send_many = slow_first_send
        sinks.entities._store = store
        key = first["Ref_Key"]
        one = [sinks.record("raw.onec.warehouse", first, key, partition=1)]
        two = [sinks.record("raw.onec.warehouse", second, key, partition=1)]
        return await asyncio.gather(sinks.entities.handle(one), sinks.entities.handle(two))

    counts = run(s, scenario)
    assert [c.changed for c in counts] == [1, 1]
    # The second batch was merged while the first one was being published ...
    assert events.index("merge Склад, версия 2") < events.index("first sent")
    assert events.index("merge Склад, версия 1") < events.index("merge Склад, версия 2")
    # ... and its change went out after the first one's, each once.
    for topic in ("norm.warehouse", "egress.bitrix24.warehouse"):
        got = sorted(count_records(s, topic, expect_at_least=2), key=lambda m: m.offset())
        assert len(got) == 2, topic
    egress = sorted(
        count_records(s, "egress.bitrix24.warehouse", expect_at_least=2), key=lambda m: m.offset()
    )
    assert [json.loads(m.value())["name"] for m in egress] == ["Склад, версия 1", "Склад, версия 2"]
    assert sql(s, "SELECT name FROM warehouse") == [("Склад, версия 2",)]
    assert sql(s, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
