"""docs/analytics/clickhouse.sql is what topics.yaml and avro/ generate; the Avro -> ClickHouse
type mapping; the Kafka Connect examples are valid JSON naming the real topics."""

from __future__ import annotations

import json
import re

import pytest

from mmstream.topics import load_catalog
from scripts.gen_clickhouse_ddl import (
    DDL_FILE,
    ROOT,
    SCHEMAS_DIR,
    TOPICS_FILE,
    Unsupported,
    clickhouse_type,
    columns,
    norm_topics,
    render,
    version_column,
)


def test_committed_ddl_is_current():
    assert DDL_FILE.exists(), "missing docs/analytics/clickhouse.sql: run make clickhouse-ddl"
    assert DDL_FILE.read_text("utf-8") == render(), (
        "stale docs/analytics/clickhouse.sql: run make clickhouse-ddl"
    )


@pytest.mark.parametrize(
    ("avro", "expected"),
    [
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 2},
            "Decimal(20, 2)",
        ),
        (
            ["null", {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4}],
            "Nullable(Decimal(20, 4))",
        ),
        ({"type": "long", "logicalType": "timestamp-millis"}, "DateTime64(3, 'UTC')"),
        (
            ["null", {"type": "long", "logicalType": "timestamp-micros"}],
            "Nullable(DateTime64(6, 'UTC'))",
        ),
        ({"type": "int", "logicalType": "date"}, "Date32"),
        ({"type": "string", "logicalType": "uuid"}, "UUID"),
        (["null", "string"], "Nullable(String)"),
        ("boolean", "Bool"),
        ("long", "Int64"),
        ("int", "Int32"),
        ("double", "Float64"),
        ({"type": "enum", "name": "Kind", "symbols": ["a"]}, "String"),
        ({"type": "map", "values": "string"}, "Map(String, String)"),
        ({"type": "array", "items": {"type": "string", "logicalType": "uuid"}}, "Array(UUID)"),
        # ClickHouse has no Nullable(Array/Map/Tuple): null reads as the empty value.
        (["null", {"type": "array", "items": "long"}], "Array(Int64)"),
        (
            {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [
                        {
                            "name": "qty",
                            "type": {
                                "type": "bytes",
                                "logicalType": "decimal",
                                "precision": 20,
                                "scale": 4,
                            },
                        },
                        {"name": "order", "type": ["null", "string"]},
                    ],
                },
            },
            "Array(Tuple(`qty` Decimal(20, 4), `order` Nullable(String)))",
        ),
    ],
)
def test_avro_types_map_to_clickhouse_types(avro, expected):
    assert clickhouse_type(avro) == expected


@pytest.mark.parametrize(
    "avro",
    [
        ["null", "string", "long"],  # Variant is experimental in ClickHouse
        {"type": "bytes", "logicalType": "decimal", "precision": 80, "scale": 2},
        "NoSuchRecord",
    ],
)
def test_types_clickhouse_cannot_read_are_refused(avro):
    with pytest.raises(Unsupported):
        clickhouse_type(avro)


def test_a_named_record_used_twice_maps_the_same():
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "n",
        "fields": [
            {
                "name": "a",
                "type": {"type": "record", "name": "P", "fields": [{"name": "v", "type": "long"}]},
            },
            {"name": "b", "type": {"type": "array", "items": "n.P"}},
        ],
    }
    assert columns(schema) == [("a", "Tuple(`v` Int64)"), ("b", "Array(Tuple(`v` Int64))")]


def test_every_normalized_topic_has_its_four_statements():
    text = render()
    specs = norm_topics()
    declared = [s for s in load_catalog(TOPICS_FILE).topics.values() if s.role == "norm"]
    assert {s.entity for s in specs} == {s.entity for s in declared if s.schema}
    for spec in specs:
        schema = json.loads((SCHEMAS_DIR / spec.schema).read_text("utf-8"))
        queue = re.search(
            rf"CREATE TABLE IF NOT EXISTS mm_analytics.`{spec.entity}_queue`\n"
            r"\((.*?)\)\nENGINE = Kafka\nSETTINGS\n(.*?);",
            text,
            re.S,
        )
        assert queue, spec.entity
        assert [line.split()[0].strip("`") for line in queue.group(1).strip().splitlines()] == [
            f["name"] for f in schema["fields"]
        ]
        assert f"kafka_topic_list = '${{MM_KAFKA__TOPIC_PREFIX}}{spec.name}'" in queue.group(2)
        assert "kafka_format = 'AvroConfluent'" in queue.group(2)
        assert "format_avro_schema_registry_url = '${SCHEMA_REGISTRY_URL}'" in queue.group(2)
        assert f"CREATE TABLE IF NOT EXISTS mm_analytics.`{spec.entity}`\n" in text
        assert (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS mm_analytics.`{spec.entity}_mv` "
            f"TO mm_analytics.`{spec.entity}`"
        ) in text
        version = version_column(schema)
        assert version == (
            "revision" if any(f["name"] == "revision" for f in schema["fields"]) else "changed_at"
        )
    assert text.count("ENGINE = ReplacingMergeTree(`revision`)\nORDER BY `id`;") == sum(
        1 for s in specs if "revision" in (SCHEMAS_DIR / s.schema).read_text("utf-8")
    )


@pytest.mark.parametrize(
    "path", sorted((ROOT / "docs" / "analytics").glob("kafka-connect-*.json")), ids=lambda p: p.name
)
def test_kafka_connect_examples_are_json_naming_real_topics(path):
    config = json.loads(path.read_text("utf-8"))["config"]
    norm = {s.name for s in load_catalog(TOPICS_FILE).topics.values() if s.role == "norm"}
    topics = [t.strip() for t in config["topics"].split(",")]
    assert topics and set(topics) <= norm
    assert config["value.converter"] == "io.confluent.connect.avro.AvroConverter"


def test_there_are_kafka_connect_examples():
    names = {p.name for p in (ROOT / "docs" / "analytics").glob("kafka-connect-*.json")}
    assert {"kafka-connect-jdbc-sink.json", "kafka-connect-s3-sink.json"} <= names
