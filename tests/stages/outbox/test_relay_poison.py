"""A stored change the relay cannot encode (design.md invariant 9): it goes to dlq.relay with
the reason and its outbox row is marked, the rest of the partition is published, and the
relay does not raise. Real broker, PostgreSQL and schema registry."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.avro_serde import AvroEncoder
from mmstream.dlq.entry import DlqEntry
from mmstream.envelope import change_id, decode_headers
from mmstream.kafka.producer import AckedProducer
from mmstream.models.price_type import PriceType
from mmstream.topics import load_catalog
from stages.outbox.relay import DEAD_LETTER, OutboxRelay, Route
from tests.stages.outbox.test_relay import Harness, outbox_rows, product, run, sql
from tests.support.topics import count_records


def insert_outbox(
    settings,
    entity: str,
    entity_id: str,
    payload: dict | str,
    *,
    topic: str,
    partition: int,
    offset: int,
    version: str = "v1",
) -> int:
    """An outbox row as a merge would write it, with whatever payload slipped through
    (``payload`` as JSON text keeps numbers json.dumps cannot write, such as 1e300)."""
    url = settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        return conn.execute(
            "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, "
            "source_partition, source_offset, payload, headers) VALUES "
            "(%s, %s, %s, 'upsert', %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                change_id(entity, entity_id, version),
                entity,
                entity_id,
                version,
                topic,
                partition,
                offset,
                payload if isinstance(payload, str) else json.dumps(payload),
                json.dumps({"x-request-id": "req-poison"}),
            ),
        ).fetchone()[0]


def dlq_entries(settings, expect: int) -> list[DlqEntry]:
    msgs = count_records(settings, "dlq.relay", expect_at_least=expect, quiet_s=0)
    return [
        DlqEntry.build(
            m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]
        )
        for m in msgs
    ]


def test_a_product_row_that_cannot_be_encoded_is_dead_lettered_and_the_partition_moves_on(
    relay_settings,
):
    good_before, good_after = product("до"), product("после")
    bad_id = str(uuid.uuid4())
    # `name` is an Avro string: a JSON object in its place cannot be written.
    bad_payload = {
        "id": bad_id,
        "source": "onec",
        "version": "v1",
        "name": {"not": "a string"},
        "deleted": False,
    }

    async def scenario(h: Harness):
        await h.store(2, good_before)
        insert_outbox(
            relay_settings, "product", bad_id, bad_payload, topic=h.raw, partition=2, offset=41
        )
        await h.store(2, good_after)
        return await h.relay.flush(h.raw, 2)

    assert run(relay_settings, scenario) == 3
    rows = outbox_rows(relay_settings)
    assert all(r[5] is not None for r in rows)  # nothing left pending: the partition moved on
    marked = sql(
        relay_settings,
        "SELECT entity_id, headers->>%s FROM outbox WHERE headers ? %s",
        DEAD_LETTER,
        DEAD_LETTER,
    )
    assert [m[0] for m in marked] == [bad_id] and marked[0][1]

    norm = count_records(relay_settings, "norm.product", expect_at_least=2, quiet_s=0)
    assert sorted(m.key() for m in norm) == sorted(
        [str(good_before.id).encode(), str(good_after.id).encode()]
    )
    (entry,) = dlq_entries(relay_settings, 1)
    assert entry.key == bad_id.encode() and entry.partition == 2
    assert json.loads(entry.value) == bad_payload  # the stored change, as it was
    assert entry.stage == "relay" and entry.failure["error.class"]
    assert entry.failure["error.message"] and entry.failure["error.retriable"] == "false"
    assert entry.failure["attempts"] == "1" and entry.failed_at is not None
    assert (entry.source_topic, entry.source_partition, entry.source_offset) == (
        relay_settings.topic("raw.onec.product"),
        2,
        41,
    )
    headers = decode_headers(entry.headers)
    assert headers["x-request-id"] == "req-poison" and headers["mm.outbox_id"]


@pytest.mark.parametrize("markup", ["1e300", '"NaN"', '"много"'])
def test_a_canonical_row_that_cannot_be_encoded_is_dead_lettered_in_flush_many(
    relay_settings, markup
):
    """Canonical entities: the model re-reads the merged row and Avro writes its decimals."""
    s = relay_settings
    raw = s.topic("raw.onec.price_type")
    norm = s.topic("norm.price_type")
    catalog = load_catalog(s.topics_file)
    good = [str(uuid.uuid4()) for _ in range(2)]
    bad = str(uuid.uuid4())

    def payload(i: str, markup: str) -> str:
        return (
            f'{{"id": "{i}", "source": "onec", "version": "v1", "name": "Розничная", '
            f'"deleted": false, "external_ids": {{}}, "markup_percent": {markup}, "revision": 1}}'
        )

    insert_outbox(s, "price_type", good[0], payload(good[0], "5"), topic=raw, partition=1, offset=1)
    insert_outbox(s, "price_type", bad, payload(bad, markup), topic=raw, partition=1, offset=2)
    insert_outbox(
        s, "price_type", good[1], payload(good[1], "7.5"), topic=raw, partition=4, offset=3
    )

    async def scenario():
        engine = create_async_engine(s.require_database_url())
        producer = AckedProducer(s.kafka, client_id="relay-poison-test")
        encoder = AvroEncoder(
            s.schemas_dir / catalog["norm.price_type"].schema,
            s.schema_registry_url,
            f"{norm}-value",
        )
        relay = OutboxRelay(
            engine,
            producer,
            {"price_type": Route(norm, encoder, (), model=PriceType)},
            dlq_topic=s.topic("dlq.relay"),
        )
        try:
            return await relay.flush_many([(raw, 1), (raw, 4)])
        finally:
            producer.close()
            await engine.dispose()

    assert asyncio.run(scenario()) == 3
    assert sql(s, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    published = count_records(s, "norm.price_type", expect_at_least=2, quiet_s=0)
    assert sorted(m.key() for m in published) == sorted(g.encode() for g in good)
    (entry,) = dlq_entries(s, 1)
    assert entry.key == bad.encode() and entry.stage == "relay"
    assert entry.source_topic == raw and entry.source_offset == 2
    assert entry.failure["error.message"]


def test_a_row_too_large_for_the_broker_is_dead_lettered_without_its_payload(relay_settings):
    before, huge, after = product("до"), product("я" * 700_000), product("после")

    async def scenario(h: Harness):
        await h.store(5, before, huge, after)
        return await h.relay.flush(h.raw, 5)

    assert run(relay_settings, scenario) == 3
    assert sql(relay_settings, "SELECT entity_id FROM outbox WHERE headers ? %s", DEAD_LETTER) == [
        (str(huge.id),)
    ]
    egress = count_records(relay_settings, "egress.bitrix24.product", expect_at_least=2, quiet_s=0)
    # At least once: rows sent before the refusal may go out twice, with the same ce_id.
    assert {m.key() for m in egress} == {str(before.id).encode(), str(after.id).encode()}
    (entry,) = dlq_entries(relay_settings, 1)
    assert entry.key == str(huge.id).encode() and entry.value is None  # the outbox row keeps it
    assert entry.code == "value_rejected" and "MSG_SIZE_TOO_LARGE" in entry.failure["error.message"]
    assert "outbox id" in decode_headers(entry.headers)["mm.payload_omitted"]
