"""A record the database refuses does not stop its batch (design.md invariant 9): it goes to
the DLQ with the reason and the others are stored and published; a fault of the database
itself is raised and dead-letters nothing. Real broker, PostgreSQL and schema registry; the
refusal is a real CHECK constraint, standing in for any value a column cannot take."""

from __future__ import annotations

import pytest

from mmstream.errors import classify, dead_letterable
from tests.stages.sink.harness import dlq, run, sink_settings, sql, warehouse
from tests.support.stack import onec_product
from tests.support.topics import count_records

POISON = "ЯД"


@pytest.fixture
def s(settings, registry_url):
    return sink_settings(settings, registry_url)


def refuse(s, table: str) -> None:
    sql(s, f"ALTER TABLE {table} ADD CONSTRAINT test_poison CHECK (name <> '{POISON}')")


def test_an_entity_the_database_refuses_is_dead_lettered_and_the_rest_of_the_batch_stored(s):
    refuse(s, "warehouse")
    records = [warehouse(name=POISON if i == 3 else f"Склад {i}") for i in range(7)]

    async def scenario(sinks):
        batch = [sinks.record("raw.onec.warehouse", r, r["Ref_Key"], partition=2) for r in records]
        return await sinks.entities.handle(batch)

    counts = run(s, scenario)
    assert counts.changed == 6
    stored = {row[0] for row in sql(s, "SELECT id::text FROM warehouse")}
    assert stored == {r["Ref_Key"] for i, r in enumerate(records) if i != 3}
    assert sql(s, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    assert len(count_records(s, "norm.warehouse", expect_at_least=6)) == 6
    (entry,) = dlq(s, "dlq.normalize", expect=1)
    assert entry.key == records[3]["Ref_Key"].encode()
    assert entry.stage == "merge" and entry.code == "value_rejected"
    assert entry.failure["error.class"] == "CheckViolation"
    assert "test_poison" in entry.failure["error.message"]
    assert (entry.source_topic, entry.source_partition, entry.source_offset) == (
        s.topic("raw.onec.warehouse"),
        2,
        3,
    )


def test_a_product_the_database_refuses_is_dead_lettered_and_the_rest_of_the_batch_stored(s):
    refuse(s, "product")
    records = [onec_product(Description=POISON if i in (0, 4) else f"Товар {i}") for i in range(6)]

    async def scenario(sinks):
        batch = [sinks.record("raw.onec.product", r, r["Ref_Key"], partition=1) for r in records]
        return await sinks.products.handle(batch)

    result = run(s, scenario)
    assert result.changed == 4
    stored = {row[0] for row in sql(s, "SELECT id::text FROM product")}
    assert stored == {r["Ref_Key"] for i, r in enumerate(records) if i not in (0, 4)}
    assert len(count_records(s, "norm.product", expect_at_least=4)) == 4
    entries = dlq(s, "dlq.normalize", expect=2)
    assert sorted(e.source_offset for e in entries) == [0, 4]
    assert {(e.stage, e.code, e.failure["error.class"]) for e in entries} == {
        ("merge", "value_rejected", "CheckViolation")
    }


@pytest.mark.parametrize(
    "table,topic", [("warehouse", "raw.onec.warehouse"), ("product", "raw.onec.product")]
)
def test_a_database_that_refuses_every_statement_stops_the_batch_and_dead_letters_nothing(
    s, table, topic
):
    # A table missing (migrations not run): no record is at fault, so none may be
    # dead-lettered; the worker stops and the batch replays once it is fixed.
    sql(s, f"ALTER TABLE {table} RENAME TO {table}_elsewhere")
    records = [warehouse() if table == "warehouse" else onec_product() for _ in range(3)]

    async def scenario(sinks):
        batch = [sinks.record(topic, r, r["Ref_Key"]) for r in records]
        sink = sinks.entities if table == "warehouse" else sinks.products
        with pytest.raises(Exception) as raised:
            await sink.handle(batch)
        return raised.value

    exc = run(s, scenario)
    assert classify(exc).code == "database_refused" and not dead_letterable(exc)
    assert dlq(s, "dlq.normalize", quiet_s=3.0) == []
