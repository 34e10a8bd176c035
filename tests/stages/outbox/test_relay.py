"""OutboxRelay on the real broker, PostgreSQL and schema registry: what it publishes, where,
with which headers, and when it must not publish."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from datetime import datetime

import psycopg
from aiokafka.partitioner import murmur2
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.avro_serde import AvroEncoder
from mmstream.envelope import change_id, decode_headers
from mmstream.kafka.producer import AckedProducer
from mmstream.models.product import Product
from mmstream.topics import load_catalog
from stages.outbox.relay import OutboxRelay, Route
from stages.sink.entity_store import Incoming, merge
from tests.support.topics import count_records

V1, V2 = "AAAAAQAAAAA=", "AAAAAgAAAAA="


def pg_url(settings) -> str:
    return settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")


def sql(settings, query: str, *params) -> list[tuple]:
    with psycopg.connect(pg_url(settings)) as conn:
        return conn.execute(query, params).fetchall()


class Harness:
    """Builds the relay the way the entity sink builds it (stages/sink/entity_worker.py
    routes) for products, inside one event loop."""

    def __init__(self, settings, page: int = 2000) -> None:
        self.settings = settings
        self.raw = settings.topic("raw.onec.product")
        self.norm = settings.topic("norm.product")
        self.egress = settings.topic("egress.bitrix24.product")
        catalog = load_catalog(settings.topics_file)
        self.encoder = AvroEncoder(
            settings.schemas_dir / catalog["norm.product"].schema,
            settings.schema_registry_url,
            f"{self.norm}-value",
        )
        self.engine = create_async_engine(settings.require_database_url())
        self.producer = AckedProducer(
            settings.kafka, client_id=f"{settings.streams.entity_sink_group}-out"
        )
        self.relay = OutboxRelay(
            self.engine,
            self.producer,
            {
                "product": Route(
                    self.norm, self.encoder, (self.egress,), model=Product, tombstones=True
                )
            },
            dlq_topic=settings.topic("dlq.relay"),
            page=page,
        )
        self.offset = 0

    async def store(self, partition: int, *products: Product, headers: dict | None = None) -> None:
        batch = []
        for p in products:
            batch.append(Incoming(p, self.raw, partition, self.offset, headers or {}))
            self.offset += 1
        async with self.engine.begin() as conn:
            await merge(conn, Product, batch)

    async def close(self) -> None:
        self.producer.close()
        await self.engine.dispose()


def run(settings, scenario, **kwargs):
    """Run ``scenario(harness)`` in a fresh event loop and clean up."""

    async def main():
        h = Harness(settings, **kwargs)
        try:
            return await scenario(h)
        finally:
            await h.close()

    return asyncio.run(main())


PARTITIONS = 6  # of raw.onec.product and its co-partitioned norm/egress topics


def partition_of(ref: uuid.UUID) -> int:
    """Where a record keyed by ``ref`` lands (murmur2, as the bridge and the relay produce)."""
    return (murmur2(str(ref).encode()) & 0x7FFFFFFF) % PARTITIONS


def ref_on(partition: int) -> uuid.UUID:
    """A fresh product id the bridge would have put on raw ``partition``."""
    while partition_of(ref := uuid.uuid4()) != partition:
        pass
    return ref


def product(
    name: str = "Мойка",
    version: str = V1,
    ref: uuid.UUID | None = None,
    on: int | None = None,
    **fields,
) -> Product:
    """A 1С product; ``on``: an id keyed onto that raw partition, as the bridge keys it."""
    ref = ref or (ref_on(on) if on is not None else uuid.uuid4())
    return Product(id=ref, source="onec", version=version, name=name, **fields)


def outbox_rows(settings) -> list[tuple]:
    """(id, event_id, entity_id, version, source_partition, published_at, created_at, payload)."""
    return sql(
        settings,
        "SELECT id, event_id, entity_id, version, source_partition, published_at, "
        "created_at, payload FROM outbox ORDER BY id",
    )


def by_outbox_id(messages) -> dict[int, object]:
    return {int(dict(m.headers())["mm.outbox_id"]): m for m in messages}


# ------------------------------------------------------------------ publishing


def test_flush_publishes_every_pending_entry_to_norm_and_egress_on_the_same_partition(
    relay_settings,
):
    parent, unit = uuid.uuid4(), uuid.uuid4()
    a = product(
        "Мойка", full_name="Мойка кухонная", code="00-01", parent_id=parent, unit_id=unit, on=3
    )
    b = product("Смеситель", deleted=True, on=3)

    async def scenario(h: Harness):
        await h.store(3, a, headers={"x-request-id": "req-a", "ce_id": "ignored"})
        await h.store(3, b, product("Смеситель (новый)", version=V2, ref=b.id))
        return h.encoder.schema_id, await h.relay.flush(h.raw, 3)

    schema_id, published = run(relay_settings, scenario)
    assert published == 3
    rows = outbox_rows(relay_settings)
    assert len(rows) == 3 and all(r[5] is not None for r in rows)  # all marked published

    published_norm = count_records(relay_settings, "norm.product", expect_at_least=4, quiet_s=0)
    egress = count_records(relay_settings, "egress.bitrix24.product", expect_at_least=3, quiet_s=0)
    # The deletion is followed at once by a tombstone, so compaction can forget the product.
    ordered = sorted(published_norm, key=lambda m: m.offset())
    (tomb,) = [m for m in ordered if m.value() is None]
    before = ordered[ordered.index(tomb) - 1]
    assert tomb.key() == before.key() == str(b.id).encode()
    assert dict(tomb.headers())["ce_type"] == b"ru.mastermobile.product.delete.v1"
    norm = [m for m in published_norm if m.value() is not None]
    assert len(norm) == 3 and len(egress) == 3
    assert {m.partition() for m in norm + egress} == {
        3
    }  # co-partitioned: same number as the source
    # Outbox order is partition order downstream.
    assert [
        int(dict(m.headers())["mm.outbox_id"]) for m in sorted(norm, key=lambda m: m.offset())
    ] == [r[0] for r in rows]
    assert [
        int(dict(m.headers())["mm.outbox_id"]) for m in sorted(egress, key=lambda m: m.offset())
    ] == [r[0] for r in rows]

    deserializer = AvroDeserializer(
        SchemaRegistryClient({"url": relay_settings.schema_registry_url})
    )
    norm_by_id, egress_by_id = by_outbox_id(norm), by_outbox_id(egress)
    for outbox_id, event_id, entity_id, version, _, _, created_at, payload in rows:
        assert event_id == uuid.UUID(change_id("product", entity_id, version))
        n, e = norm_by_id[outbox_id], egress_by_id[outbox_id]
        for msg, ctype in ((n, "application/avro"), (e, "application/json")):
            assert msg.key() == entity_id.encode()
            headers = decode_headers(msg.headers())
            assert headers["ce_id"] == str(event_id)
            assert headers["ce_specversion"] == "1.0"
            change = "delete" if payload["deleted"] else "upsert"
            assert headers["ce_type"] == f"ru.mastermobile.product.{change}.v1"
            assert headers["ce_subject"] == entity_id
            assert headers["ce_source"] == "/mastermobile-stream/sink"
            assert datetime.fromisoformat(headers["ce_time"]) == created_at
            assert headers["content-type"] == ctype
            assert headers["mm.outbox_id"] == str(outbox_id)
            assert headers["mm.version"] == version
            if entity_id == str(a.id):
                assert headers["x-request-id"] == "req-a"
            else:
                assert "x-request-id" not in headers

        # norm: Confluent wire format, readable by the standard deserializer
        raw_value = n.value()
        assert raw_value[0] == 0
        assert struct.unpack(">I", raw_value[1:5])[0] == schema_id
        value = deserializer(raw_value, SerializationContext(n.topic(), MessageField.VALUE))
        assert str(value["event_id"]) == str(event_id)
        assert str(value["id"]) == entity_id and value["version"] == version
        assert value["name"] == payload["name"] and value["deleted"] == payload["deleted"]
        millis = created_at.replace(microsecond=created_at.microsecond // 1000 * 1000)
        assert value["changed_at"] == millis
        # egress: the canonical JSON product plus its event id
        assert json.loads(e.value()) == {**payload, "event_id": str(event_id)}

    a_norm = next(
        deserializer(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
        for m in norm
        if m.key() == str(a.id).encode()
    )
    assert str(a_norm["parent_id"]) == str(parent) and str(a_norm["unit_id"]) == str(unit)
    assert a_norm["full_name"] == "Мойка кухонная" and a_norm["code"] == "00-01"
    b_versions = [
        json.loads(m.value())["name"]
        for m in sorted(egress, key=lambda m: m.offset())
        if m.key() == str(b.id).encode()
    ]
    assert b_versions == ["Смеситель", "Смеситель (новый)"]


def test_a_second_flush_publishes_nothing(relay_settings):
    async def scenario(h: Harness):
        await h.store(0, product(on=0), product(on=0))
        first = await h.relay.flush(h.raw, 0)
        second = await h.relay.flush(h.raw, 0)
        third = await h.relay.flush(h.raw, 0, wait=False)
        return first, second, third

    assert run(relay_settings, scenario) == (2, 0, 0)
    assert len(count_records(relay_settings, "norm.product", expect_at_least=2, quiet_s=0)) == 2
    assert (
        len(count_records(relay_settings, "egress.bitrix24.product", expect_at_least=2, quiet_s=0))
        == 2
    )


def test_a_new_relay_does_not_republish_what_was_marked(relay_settings):
    # A restarted worker (new relay, new producer) finds nothing pending.
    async def first(h: Harness):
        await h.store(1, product(on=1))
        return await h.relay.flush(h.raw, 1)

    async def second(h: Harness):
        return await h.relay.flush(h.raw, 1)

    assert run(relay_settings, first) == 1
    assert run(relay_settings, second) == 0
    assert len(count_records(relay_settings, "norm.product", expect_at_least=1, quiet_s=0)) == 1


def test_entries_of_another_partition_are_left_alone(relay_settings):
    mine, theirs = product("моя", on=1), product("чужая", on=4)

    async def scenario(h: Harness):
        await h.store(1, mine)
        await h.store(4, theirs)
        return await h.relay.flush(h.raw, 1)

    assert run(relay_settings, scenario) == 1
    pending = sql(
        relay_settings, "SELECT entity_id, source_partition FROM outbox WHERE published_at IS NULL"
    )
    assert pending == [(str(theirs.id), 4)]
    norm = count_records(relay_settings, "norm.product", expect_at_least=1, quiet_s=0)
    egress = count_records(relay_settings, "egress.bitrix24.product", expect_at_least=1, quiet_s=0)
    assert [(m.key(), m.partition()) for m in norm] == [(str(mine.id).encode(), 1)]
    assert [(m.key(), m.partition()) for m in egress] == [(str(mine.id).encode(), 1)]


def test_entries_of_another_source_topic_are_left_alone(relay_settings):
    async def scenario(h: Harness):
        await h.store(2, product(on=2))
        return await h.relay.flush(relay_settings.topic("raw.other.product"), 2)

    assert run(relay_settings, scenario) == 0
    assert sql(relay_settings, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(1,)]


def test_pages_are_published_in_order_until_nothing_is_pending(relay_settings):
    products = [product(f"товар {i}", on=5) for i in range(5)]

    async def scenario(h: Harness):
        await h.store(5, *products)
        return await h.relay.flush(h.raw, 5)

    assert run(relay_settings, scenario, page=2) == 5
    assert sql(relay_settings, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    norm = sorted(
        count_records(relay_settings, "norm.product", expect_at_least=5, quiet_s=0),
        key=lambda m: m.offset(),
    )
    assert [m.key() for m in norm] == [str(p.id).encode() for p in products]
    assert {m.partition() for m in norm} == {5}


# ------------------------------------------------------------------ the partition lock


class HeldLock:
    """The relay's advisory lock for (topic, partition), held by another session."""

    def __init__(self, settings, topic: str, partition: int) -> None:
        self.conn = psycopg.connect(pg_url(settings), autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(hashtext(%s), %s::int)", (topic, partition))

    def release(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock_all()")

    def close(self) -> None:
        self.conn.close()


def test_flush_without_wait_skips_a_partition_locked_elsewhere(relay_settings):
    raw = relay_settings.topic("raw.onec.product")
    lock = HeldLock(relay_settings, raw, 2)
    try:

        async def scenario(h: Harness):
            await h.store(2, product(on=2), product(on=2))
            await h.store(3, product(on=3))
            skipped = await h.relay.flush(h.raw, 2, wait=False)
            other_partition = await h.relay.flush(h.raw, 3, wait=False)  # not locked
            pending_while_locked = sql(
                relay_settings, "SELECT source_partition FROM outbox WHERE published_at IS NULL"
            )
            lock.release()
            after = await h.relay.flush(h.raw, 2, wait=False)
            return skipped, other_partition, pending_while_locked, after

        skipped, other_partition, pending_while_locked, after = run(relay_settings, scenario)
    finally:
        lock.close()
    assert skipped == 0
    assert other_partition == 1
    assert pending_while_locked == [(2,), (2,)]
    assert after == 2
    norm = count_records(relay_settings, "norm.product", expect_at_least=3, quiet_s=0)
    assert sorted(m.partition() for m in norm) == [2, 2, 3]


def test_flush_with_wait_publishes_once_the_other_holder_lets_go(relay_settings):
    raw = relay_settings.topic("raw.onec.product")
    lock = HeldLock(relay_settings, raw, 0)
    try:

        async def scenario(h: Harness):
            await h.store(0, product(on=0))
            task = asyncio.create_task(h.relay.flush(h.raw, 0))
            # Wait (without a time assertion) until the relay is queued behind the lock.
            deadline = time.monotonic() + 30
            while not sql(
                relay_settings,
                "SELECT 1 FROM pg_locks l JOIN pg_database d "
                "ON d.oid = l.database WHERE l.locktype = 'advisory' "
                "AND NOT l.granted AND d.datname = current_database()",
            ):
                assert time.monotonic() < deadline, "the relay never waited for the lock"
                assert not task.done(), f"flush finished while the lock was held: {task.result()}"
                await asyncio.sleep(0.05)
            still_pending = sql(
                relay_settings, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            lock.release()
            return still_pending, await task

        still_pending, published = run(relay_settings, scenario)
    finally:
        lock.close()
    assert still_pending == [(1,)]
    assert published == 1
    assert len(count_records(relay_settings, "norm.product", expect_at_least=1, quiet_s=0)) == 1


# ------------------------------------------------------------------ backlog gauges


def test_backlog_gauges_count_pending_entries_of_the_owned_partitions_only(relay_settings):
    from prometheus_client import REGISTRY

    def gauge(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"entity": "product"})

    async def scenario(h: Harness):
        await h.store(1, product(on=1), product(on=1))
        await h.store(2, product(on=2))
        owned_one = await h.relay.measure_backlog([(h.raw, 1)])
        one = gauge("mm_outbox_backlog"), gauge("mm_outbox_oldest_age_seconds")
        both = await h.relay.measure_backlog([(h.raw, 1), (h.raw, 2)])
        other_topic = await h.relay.measure_backlog([(h.settings.topic("raw.onec.warehouse"), 1)])
        await h.relay.flush(h.raw, 1)
        await h.relay.flush(h.raw, 2)
        drained = await h.relay.measure_backlog([(h.raw, 1), (h.raw, 2)])
        return owned_one, one, both, other_topic, drained

    owned_one, (backlog, age), both, other_topic, drained = run(relay_settings, scenario)
    assert owned_one == {"product": 2} and backlog == 2 and age >= 0
    assert both == {"product": 3}
    assert other_topic == {}
    # Nothing pending: the entity's gauges drop to 0 instead of keeping the last value.
    assert (
        drained == {}
        and gauge("mm_outbox_backlog") == 0
        and gauge("mm_outbox_oldest_age_seconds") == 0
    )


def test_flush_many_publishes_several_partitions_in_pages_keeping_each_order(relay_settings):
    first = [product(f"первый {i}", on=1) for i in range(3)]
    second = [product(f"второй {i}", on=4) for i in range(4)]

    async def scenario(h: Harness):
        await h.store(1, *first)
        await h.store(4, *second)
        await h.store(2, product("не тронут", on=2))  # a partition the caller did not name
        return await h.relay.flush_many([(h.raw, 4), (h.raw, 1)])

    assert run(relay_settings, scenario, page=3) == 7
    assert sql(
        relay_settings, "SELECT source_partition FROM outbox WHERE published_at IS NULL"
    ) == [(2,)]
    norm = count_records(relay_settings, "norm.product", expect_at_least=7, quiet_s=0)
    for partition, expected in ((1, first), (4, second)):
        mine = sorted((m for m in norm if m.partition() == partition), key=lambda m: m.offset())
        assert [m.key() for m in mine] == [str(p.id).encode() for p in expected]
