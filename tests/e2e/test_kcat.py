"""What an analyst sees with kcat on a normalized topic: a warehouse goes through the bridge
and the entity sink to ``norm.warehouse``, and kcat reads it back from the real broker.

kcat is the Debian package (``apt-get install kcat``). Its librdkafka 2.0.2 fails the
ApiVersion handshake with the embedded broker, so kcat runs with the newer librdkafka that
the confluent-kafka wheel ships (tansu.md). The wheel's copy has a hashed file name
(``librdkafka-<hash>.so.1``), which the loader does not find through ``LD_LIBRARY_PATH``;
``LD_PRELOAD`` of that file works.

Debian builds kcat without libserdes, so its ``-s value=avro -r <registry>`` answers "This
build of kcat lacks Avro/Schema-Registry support". The first test therefore reads the
Confluent-framed bytes with ``-J`` and decodes them with the registry through
confluent-kafka's AvroDeserializer; the second runs ``-s value=avro -r`` itself wherever kcat
has Avro support (Homebrew, the edenhill/kcat image, a build with libserdes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

KCAT = shutil.which("kcat")
needs_kcat = pytest.mark.skipif(
    KCAT is None, reason="kcat is not installed (apt-get install -y kcat)"
)


def kcat_env() -> dict[str, str]:
    """The environment kcat needs here: the wheel's newer librdkafka preloaded, when present."""
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*"))
    return {**os.environ, "LD_PRELOAD": str(found[0])} if found else dict(os.environ)


def kcat_has_avro() -> bool:
    """Whether this kcat build decodes Avro through a schema registry (``kcat -V`` lists it)."""
    out = subprocess.run([KCAT, "-V"], capture_output=True, text=True, env=kcat_env(), timeout=30)
    features = out.stdout.partition("Version ")[2].partition("(")[2].partition("librdkafka")[0]
    return "Avro" in features


def kcat_consume(settings, topic: str, *extra: str) -> list[dict]:
    """``kcat -C -b <bootstrap> -t <topic> -e -J [extra]``: every record as kcat's JSON line.

    kcat writes a binary payload into its JSON as raw bytes (control characters escaped), so
    the output is read with ``surrogateescape``: ``payload.encode("utf-8", "surrogateescape")``
    gives back the exact bytes.
    """
    out = subprocess.run(
        [
            KCAT,
            "-C",
            "-b",
            settings.kafka.bootstrap_servers,
            "-t",
            settings.topic(topic),
            "-e",
            "-J",
            "-q",
            *extra,
        ],
        capture_output=True,
        env=kcat_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    text = out.stdout.decode("utf-8", "surrogateescape")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def warehouse(ref: str, version: str, name: str, **extra) -> dict:
    """A Catalog_Склады record in the standard OData shape."""
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Code": "000000042",
        "Description": name,
        "Parent_Key": "00000000-0000-0000-0000-000000000000",
        "IsFolder": False,
        **extra,
    }


def publish_warehouse_and_delete_it(pipeline) -> str:
    """One warehouse, a rename, then its deletion: three records and a tombstone on norm."""
    pipeline.start_entity_sink()
    pipeline.start_bridge()
    ref = str(uuid.uuid4())
    for version, name, deleted in (
        ("AAAAAQ==", "Склад «Север»", False),
        ("AAAAAg==", "Склад «Север» \\ №2", False),
        ("AAAAAw==", "Склад «Север» \\ №2", True),
    ):
        resp = pipeline.post_onec("Склады", warehouse(ref, version, name, DeletionMark=deleted))
        assert resp.status_code == 202, resp.text
    pipeline.wait_sql(
        'SELECT 1 FROM "warehouse" WHERE id = %s AND deleted', lambda r: len(r) == 1, 120, ref
    )
    # kcat -e stops at the end of each partition: wait until everything is there first.
    assert len(count_records(pipeline.settings, "norm.warehouse", expect_at_least=4)) >= 4
    return ref


def distinct(records: list[dict]) -> list[dict]:
    """kcat records without the relay's at-least-once repeats (same ce_id, same kind)."""
    seen: set[tuple[str, bool]] = set()
    out = []
    for record in records:
        mark = (headers(record)["ce_id"], record["payload"] is None)
        if mark not in seen:
            seen.add(mark)
            out.append(record)
    return out


def headers(record: dict) -> dict[str, str]:
    """kcat's flat ``[name, value, name, value, ...]`` header list as a dict."""
    flat = record.get("headers") or []
    return dict(zip(flat[::2], flat[1::2], strict=True))


@needs_kcat
def test_kcat_reads_the_normalized_topic_and_its_confluent_framed_avro(pipeline):
    ref = publish_warehouse_and_delete_it(pipeline)

    everything = kcat_consume(pipeline.settings, "norm.warehouse")
    # kcat's bytes are exactly what a Kafka client reads.
    direct = count_records(pipeline.settings, "norm.warehouse", expect_at_least=len(everything))
    assert sorted(
        (r["offset"], r["payload"] and r["payload"].encode("utf-8", "surrogateescape"))
        for r in everything
    ) == sorted((m.offset(), m.value()) for m in direct)

    records = distinct(everything)
    assert [r["key"] for r in records] == [ref] * 4
    assert len({r["partition"] for r in everything}) == 1  # one entity, one partition, in order
    assert records[3]["payload"] is None  # the tombstone after the deletion

    # The values are Confluent wire format (magic byte 0 + schema id), decoded through the
    # registry by the standard client.
    payloads = [r["payload"].encode("utf-8", "surrogateescape") for r in records[:3]]
    assert all(p[0] == 0 for p in payloads)
    deserializer = AvroDeserializer(
        SchemaRegistryClient({"url": pipeline.settings.schema_registry_url})
    )
    ctx = SerializationContext(pipeline.settings.topic("norm.warehouse"), MessageField.VALUE)
    values = [deserializer(p, ctx) for p in payloads]
    assert [(v["name"], v["deleted"], v["revision"], v["version"]) for v in values] == [
        ("Склад «Север»", False, 1, "AAAAAQ=="),
        ("Склад «Север» \\ №2", False, 2, "AAAAAg=="),
        ("Склад «Север» \\ №2", True, 3, "AAAAAw=="),
    ]
    assert all(
        str(v["id"]) == ref and v["source"] == "onec" and v["code"] == "000000042" for v in values
    )

    # CloudEvents headers come through kcat too.
    meta = [headers(r) for r in records[:3]]
    assert [h["ce_id"] for h in meta] == [str(v["event_id"]) for v in values]
    assert [h["ce_type"] for h in meta] == ["ru.mastermobile.warehouse.upsert.v1"] * 2 + [
        "ru.mastermobile.warehouse.delete.v1"
    ]
    assert all(h["content-type"] == "application/avro" for h in meta)


@needs_kcat
@pytest.mark.skipif(
    KCAT is not None and not kcat_has_avro(),
    reason="this kcat build lacks Avro/Schema-Registry support (Debian builds kcat "
    "without libserdes); the wire-format test covers the same records",
)
def test_kcat_decodes_avro_values_through_the_registry(pipeline):
    ref = publish_warehouse_and_delete_it(pipeline)

    records = distinct(
        kcat_consume(
            pipeline.settings,
            "norm.warehouse",
            "-s",
            "value=avro",
            "-r",
            pipeline.settings.schema_registry_url,
        )
    )
    values = [r["payload"] for r in records if r["payload"] is not None]
    assert {r["key"] for r in records} == {ref}
    assert [(v["name"], v["deleted"], v["revision"]) for v in values] == [
        ("Склад «Север»", False, 1),
        ("Склад «Север» \\ №2", False, 2),
        ("Склад «Север» \\ №2", True, 3),
    ]
    assert all(v["id"] == ref for v in values)
