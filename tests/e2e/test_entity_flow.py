"""Canonical entities end to end on the real broker, PostgreSQL and processes:
1С POST -> bridge -> raw.onec.<object> -> entity sink (table + outbox) -> norm.<entity> (Avro,
read with confluent-kafka's AvroDeserializer), deletions as tombstones, bad records to the
normalize DLQ while the stream goes on."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from mmstream.dlq.format import failure_headers
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e


def warehouse(ref: str, version: str, name: str, **extra) -> dict:
    """A Catalog_Склады record in the standard OData shape."""
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Code": "000000001",
        "Description": name,
        "Parent_Key": "00000000-0000-0000-0000-000000000000",
        "IsFolder": False,
        **extra,
    }


def decode(pipeline, msg) -> dict:
    deserializer = AvroDeserializer(
        SchemaRegistryClient({"url": pipeline.settings.schema_registry_url})
    )
    return deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))


def test_warehouse_versions_reach_the_table_and_norm_topic_with_a_tombstone(pipeline):
    pipeline.start_entity_sink()
    pipeline.start_bridge()
    ref = str(uuid.uuid4())
    for version, name, deleted in (
        ("AAAAAQ==", "Склад Центральный", False),
        ("AAAAAQ==", "Склад Центральный", False),  # duplicate
        ("AAAAAg==", "Склад Центральный (новый)", False),
        ("AAAAAw==", "Склад Центральный (новый)", True),
    ):
        resp = pipeline.post_onec("Склады", warehouse(ref, version, name, DeletionMark=deleted))
        assert resp.status_code == 202, resp.text

    pipeline.wait_sql(
        'SELECT 1 FROM "warehouse" WHERE id = %s AND deleted', lambda r: len(r) == 1, 90, ref
    )
    assert pipeline.sql('SELECT name, version, revision FROM "warehouse" WHERE id = %s', ref) == [
        ("Склад Центральный (новый)", "AAAAAw==", 3)
    ]

    # three changes, then the tombstone that lets compaction forget the deleted warehouse
    norm = count_records(pipeline.settings, "norm.warehouse", expect_at_least=4)
    assert [m.key().decode() for m in norm] == [ref] * 4
    values = [decode(pipeline, m) for m in norm[:3]]
    assert [(v["name"], v["deleted"], v["revision"]) for v in values] == [
        ("Склад Центральный", False, 1),
        ("Склад Центральный (новый)", False, 2),
        ("Склад Центральный (новый)", True, 3),
    ]
    assert str(values[0]["id"]) == ref and values[0]["source"] == "onec"
    assert norm[3].value() is None
    assert {m.partition() for m in norm} == {norm[0].partition()}


def test_unnormalizable_record_goes_to_the_dlq_and_the_stream_goes_on(pipeline):
    pipeline.start_entity_sink()
    pipeline.start_bridge()
    settings = pipeline.settings
    bad_key = str(uuid.uuid4())
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    # Past the bridge (a producer writing straight to the raw topic): not JSON at all.
    producer.produce(settings.topic("raw.onec.warehouse"), b"{not json", bad_key.encode())
    producer.flush(30)
    good = str(uuid.uuid4())
    assert (
        pipeline.post_onec("Склады", warehouse(good, "AAAAAQ==", "Склад Южный")).status_code == 202
    )

    pipeline.wait_sql('SELECT 1 FROM "warehouse" WHERE id = %s', lambda r: len(r) == 1, 90, good)
    (dead,) = count_records(settings, "dlq.normalize", expect_at_least=1)
    assert dead.key().decode() == bad_key and dead.value() == b"{not json"
    meta = failure_headers(dead.headers())
    assert meta["stage"] == "normalize" and meta["source.topic"] == settings.topic(
        "raw.onec.warehouse"
    )
    assert "not JSON" in meta["error.message"]
    assert json.loads(pipeline.sql('SELECT count(*) FROM "warehouse"')[0][0].__str__()) == 1
