"""Write docs/analytics/clickhouse.sql: ClickHouse tables fed by the normalized topics
(``make clickhouse-ddl``); a test fails when the committed file differs from what this renders.

Per normalized topic of topics.yaml (role ``norm``) and its committed Avro schema:

- ``<entity>_queue``: a Kafka engine table reading the topic with ``kafka_format =
  'AvroConfluent'`` (values resolved through the schema registry by their schema id);
- ``<entity>``: a ``ReplacingMergeTree(revision)`` table ordered by ``id`` — the catalog's
  "highest revision wins" rule, applied by ClickHouse at merge time and by ``FINAL``;
- ``<entity>_mv``: the materialized view moving rows from the first to the second;
- ``<entity>_current``: the current, non-deleted objects (``FINAL``, ``NOT deleted``).

ClickHouse skips tombstones (null values) of a Kafka topic, so a deletion shows as the
``deleted = true`` record that precedes every tombstone. The file holds placeholders for
``envsubst``: ``${KAFKA_BROKER_LIST}``, ``${SCHEMA_REGISTRY_URL}``, ``${MM_KAFKA__TOPIC_PREFIX}``.

    .venv/bin/python scripts/gen_clickhouse_ddl.py          # regenerate
    .venv/bin/python scripts/gen_clickhouse_ddl.py --check  # exit 1 when the committed file is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmstream.avro_columns import Dialect, column_type  # noqa: E402
from mmstream.avro_columns import columns as avro_columns  # noqa: E402
from mmstream.topics import TopicSpec, load_catalog  # noqa: E402

DDL_FILE = ROOT / "docs" / "analytics" / "clickhouse.sql"
TOPICS_FILE = ROOT / "topics.yaml"
SCHEMAS_DIR = ROOT / "avro"
DATABASE = "mm_analytics"

_PRIMITIVES = {
    "string": "String",
    "bytes": "String",
    "boolean": "Bool",
    "int": "Int32",
    "long": "Int64",
    "float": "Float32",
    "double": "Float64",
}
_LOGICAL = {
    ("string", "uuid"): "UUID",
    ("int", "date"): "Date32",
    ("long", "timestamp-millis"): "DateTime64(3, 'UTC')",
    ("long", "timestamp-micros"): "DateTime64(6, 'UTC')",
    ("long", "local-timestamp-millis"): "DateTime64(3)",
    ("long", "local-timestamp-micros"): "DateTime64(6)",
}
# ClickHouse cannot wrap these in Nullable(): a null of a [null, T] union becomes T's
# default (an empty array, map or tuple) through input_format_avro_null_as_default.
_NOT_NULLABLE = ("Array(", "Map(", "Tuple(")
_MAX_DECIMAL_PRECISION = 76


class Unsupported(ValueError):
    """An Avro type with no ClickHouse column this generator can promise to read."""


def ident(name: str) -> str:
    """A ClickHouse identifier, backquoted (``return`` is a keyword)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _clickhouse_union(avro: list, walk) -> str:
    branches = [b for b in avro if b != "null"]
    if len(branches) != 1:
        raise Unsupported(f"union {avro!r}: only [null, T] maps to a ClickHouse column")
    inner = walk(branches[0])
    if "null" not in avro or inner.startswith(_NOT_NULLABLE):
        return inner
    return f"Nullable({inner})"


def _clickhouse_decimal(precision: int, scale: int) -> str:
    if precision > _MAX_DECIMAL_PRECISION:
        raise Unsupported(f"decimal({precision},{scale}) is wider than ClickHouse's Decimal")
    return f"Decimal({precision}, {scale})"


CLICKHOUSE = Dialect(
    primitives=_PRIMITIVES,
    logical=_LOGICAL,
    union=_clickhouse_union,
    decimal=_clickhouse_decimal,
    record=lambda members: "Tuple(" + ", ".join(f"{ident(n)} {t}" for n, t in members) + ")",
    enum=lambda _: "String",
    fixed=lambda avro: f"FixedString({int(avro['size'])})",
    array=lambda items: f"Array({items})",
    map=lambda values: f"Map(String, {values})",
    unknown=Unsupported,
)


def clickhouse_type(avro: Any, named: dict[str, str] | None = None) -> str:
    """The ClickHouse column type that AvroConfluent reads ``avro`` into.

    ``[null, T]`` -> ``Nullable(T)`` (T itself where ClickHouse has no Nullable of it);
    ``decimal(p, s)`` -> ``Decimal(p, s)``; ``timestamp-millis`` -> ``DateTime64(3, 'UTC')``;
    ``uuid`` -> ``UUID``; ``date`` -> ``Date32``; arrays -> ``Array``; maps ->
    ``Map(String, V)``; records -> named ``Tuple``; enums -> ``String``. A union of several
    non-null types (ClickHouse's Variant is experimental) is refused rather than guessed.
    """
    return column_type(avro, CLICKHOUSE, named)


def columns(schema: dict) -> list[tuple[str, str]]:
    """(column, ClickHouse type) of every top-level field, in schema order."""
    return avro_columns(schema, CLICKHOUSE)


def version_column(schema: dict) -> str:
    """The ReplacingMergeTree version: ``revision`` (the catalog's rule); a schema without
    it (product) keeps the latest ``changed_at``, the time the pipeline recorded the change."""
    names = {f["name"] for f in schema["fields"]}
    if "revision" in names:
        return "revision"
    if "changed_at" in names:
        return "changed_at"
    raise Unsupported(f"{schema.get('name')}: neither revision nor changed_at to order versions")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def entity_ddl(spec: TopicSpec, schema: dict) -> str:
    """The four statements of one normalized topic."""
    entity, cols = spec.entity, columns(schema)
    width = max(len(ident(n)) for n, _ in cols)
    body = ",\n".join(f"    {ident(n).ljust(width)} {t}" for n, t in cols)
    names = ", ".join(ident(n) for n, _ in cols)
    table, queue = f"{DATABASE}.{ident(entity)}", f"{DATABASE}.{ident(entity + '_queue')}"
    topic = "${MM_KAFKA__TOPIC_PREFIX}" + spec.name
    version = version_column(schema)
    return "\n".join(
        [
            f"-- {spec.name}: {spec.description}",
            f"-- schema: avro/{spec.schema} ({schema.get('namespace', '')}.{schema['name']}); "
            f"versions by {version}",
            f"CREATE TABLE IF NOT EXISTS {queue}",
            "(",
            body,
            ")",
            "ENGINE = Kafka",
            "SETTINGS",
            "    kafka_broker_list = '${KAFKA_BROKER_LIST}',",
            f"    kafka_topic_list = {_quote(topic)},",
            f"    kafka_group_name = {_quote('clickhouse-' + topic)},",
            "    kafka_format = 'AvroConfluent',",
            "    format_avro_schema_registry_url = '${SCHEMA_REGISTRY_URL}',",
            "    -- records written before a field was added (BACKWARD evolution) get its default",
            "    input_format_avro_allow_missing_fields = 1,",
            "    input_format_avro_null_as_default = 1;",
            "",
            f"CREATE TABLE IF NOT EXISTS {table}",
            "(",
            body,
            ")",
            f"ENGINE = ReplacingMergeTree({ident(version)})",
            "ORDER BY `id`;",
            "",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{ident(entity + '_mv')} TO {table}",
            f"AS SELECT {names}",
            f"FROM {queue};",
            "",
            f"CREATE VIEW IF NOT EXISTS {DATABASE}.{ident(entity + '_current')}",
            f"AS SELECT * FROM {table} FINAL WHERE NOT `deleted`;",  # noqa: S608 — DDL text
        ]
    )


def norm_topics() -> list[TopicSpec]:
    """The normalized topics whose schema is committed, by entity."""
    specs = [
        s
        for s in load_catalog(TOPICS_FILE).topics.values()
        if s.role == "norm" and s.schema and (SCHEMAS_DIR / s.schema).exists()
    ]
    return sorted(specs, key=lambda s: s.entity)


def render() -> str:
    """The whole file."""
    parts = [
        "-- ClickHouse tables for the normalized topics of MasterMobile Stream.",
        "-- Generated by scripts/gen_clickhouse_ddl.py from topics.yaml and avro/*.avsc "
        "(`make clickhouse-ddl`); do not edit by hand.",
        "--",
        "-- Fill the placeholders and run it once per ClickHouse cluster:",
        "--   KAFKA_BROKER_LIST=kafka-1:9092,kafka-2:9092 SCHEMA_REGISTRY_URL=http://registry:8081 \\",
        "--   MM_KAFKA__TOPIC_PREFIX= envsubst < docs/analytics/clickhouse.sql \\",
        "--     | clickhouse-client --multiquery",
        "--",
        "-- Per entity: <entity>_queue (Kafka engine, AvroConfluent), <entity> "
        "(ReplacingMergeTree by revision,",
        "-- ordered by id), <entity>_mv (the materialized view between them) and "
        "<entity>_current (current,",
        "-- non-deleted objects). ClickHouse skips tombstones; a deletion is the `deleted = true` "
        "record before it.",
        "-- Query with FINAL (or the _current views) to see one row per id: merges collapse "
        "versions eventually.",
        "",
        f"CREATE DATABASE IF NOT EXISTS {DATABASE};",
    ]
    for spec in norm_topics():
        schema = json.loads((SCHEMAS_DIR / spec.schema).read_text(encoding="utf-8"))
        parts += ["", entity_ddl(spec, schema)]
    return "\n".join(parts) + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        current = DDL_FILE.read_text(encoding="utf-8") if DDL_FILE.exists() else ""
        if current != text:
            print(
                f"{DDL_FILE.relative_to(ROOT)} is stale: run scripts/gen_clickhouse_ddl.py",
                file=sys.stderr,
            )
            sys.exit(1)
        return
    DDL_FILE.parent.mkdir(parents=True, exist_ok=True)
    DDL_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {DDL_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
