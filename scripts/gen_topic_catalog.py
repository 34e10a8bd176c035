"""Write docs/topic-catalog.md, the analysts' catalog of the normalized topics (``make catalog``).

Generated from topics.yaml (topic, key, partitions, retention, compaction) and the committed
Avro schemas (fields, types, descriptions, nested line records); a test fails when the
committed catalog differs from what this renders.

    .venv/bin/python scripts/gen_topic_catalog.py          # regenerate
    .venv/bin/python scripts/gen_topic_catalog.py --check  # exit 1 when the committed file is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmstream.topics import TopicSpec, load_catalog  # noqa: E402

CATALOG_FILE = ROOT / "docs" / "topic-catalog.md"
TOPICS_FILE = ROOT / "topics.yaml"
SCHEMAS_DIR = ROOT / "avro"

# Normalized topics whose deletions are NOT followed by a tombstone (none today: the product
# sink and the entity sink both follow a deletion on a compacted topic with a tombstone).
NO_TOMBSTONE: frozenset[str] = frozenset()

# Identity, ordering and envelope fields every schema has; examples show the content instead.
_COMMON_FIELDS = frozenset(
    {
        "id",
        "source",
        "version",
        "source_stamp",
        "deleted",
        "external_ids",
        "event_id",
        "changed_at",
        "revision",
    }
)

_LOGICAL = {
    "uuid": "uuid",
    "timestamp-micros": "timestamp (µs, UTC)",
    "timestamp-millis": "timestamp (ms, UTC)",
    "date": "date",
}


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _cell(text: Any) -> str:
    """Text that stays inside one Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


class _Schema:
    """One topic's Avro schema: type names for people, and the nested records in order."""

    def __init__(self, schema: dict) -> None:
        self.schema = schema
        self.nested: list[tuple[dict, str]] = []  # (record, field path it first appears in)
        self._seen: set[str] = {_short(schema["name"])}

    def type_name(self, node: Any, where: str) -> str:
        """``node`` as a short readable type, e.g. ``decimal(20,2)``, ``array<GoodsLine>``."""
        if isinstance(node, list):
            rest = [b for b in node if b != "null"]
            inner = " \\| ".join(self.type_name(b, where) for b in rest)
            return f"{inner} or null" if len(rest) < len(node) else inner
        if isinstance(node, str):
            return _short(node)
        kind, logical = node.get("type"), node.get("logicalType")
        if logical == "decimal":
            return f"decimal({node['precision']},{node.get('scale', 0)})"
        if logical in _LOGICAL:
            return _LOGICAL[logical]
        if kind == "array":
            return f"array<{self.type_name(node['items'], where)}>"
        if kind == "map":
            return f"map<string, {self.type_name(node['values'], where)}>"
        if kind in ("record", "error"):
            name = _short(node["name"])
            if name not in self._seen:
                self._seen.add(name)
                self.nested.append((node, where))
            return name
        if kind == "enum":
            return f"enum {{{', '.join(node['symbols'])}}}"
        if kind == "fixed":
            return f"fixed({node['size']})"
        return self.type_name(kind, where)

    def field_rows(self, record: dict) -> list[str]:
        rows = ["| field | type | default | description |", "|---|---|---|---|"]
        for field in record["fields"]:
            typ = self.type_name(field["type"], field["name"])
            default = (
                f"`{json.dumps(field['default'], ensure_ascii=False)}`"
                if "default" in field
                else "required"
            )
            rows.append(
                f"| `{field['name']}` | {typ} | {_cell(default)} | {_cell(field.get('doc', ''))} |"
            )
        return rows


def _duration(ms: str) -> str:
    value = int(ms)
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if value >= size and value % size == 0:
            n = value // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{value} ms"


def _retention_short(spec: TopicSpec) -> str:
    configs = spec.configs
    if "compact" in configs.get("cleanup.policy", "delete"):
        lag = configs.get("min.compaction.lag.ms")
        return f"compacted (min. lag {_duration(lag)})" if lag else "compacted"
    retention = configs.get("retention.ms")
    return f"{_duration(retention)}" if retention else "broker default"


def _retention(spec: TopicSpec) -> str:
    configs = spec.configs
    parts = []
    if "compact" in configs.get("cleanup.policy", "delete"):
        parts.append("compacted: the latest record per key is kept for ever")
        if "min.compaction.lag.ms" in configs:
            parts.append(
                f"every change stays readable for at least "
                f"{_duration(configs['min.compaction.lag.ms'])} (min.compaction.lag.ms)"
            )
        if "delete.retention.ms" in configs:
            parts.append(
                f"a tombstone stays readable for "
                f"{_duration(configs['delete.retention.ms'])} after compaction "
                f"(delete.retention.ms)"
            )
    if "delete" in configs.get("cleanup.policy", "delete"):
        retention = configs.get("retention.ms")
        parts.append(
            f"deleted after {_duration(retention)} (retention.ms)"
            if retention
            else "deleted after the broker's default retention"
        )
    return "; ".join(parts)


def _tombstones(spec: TopicSpec) -> str:
    deleted = (
        "A deletion at the source (1С DeletionMark, Bitrix24 delete) is published as a "
        "record with `deleted = true`"
    )
    if spec.name in NO_TOMBSTONE or "compact" not in spec.configs.get("cleanup.policy", ""):
        return f"{deleted}; no tombstone follows, so the record stays on the topic."
    return (
        f"{deleted}, then a tombstone (same key, null value) so that compaction forgets "
        "the object. A consumer keeping a table marks the row deleted on the first and "
        "may drop it on the tombstone."
    )


def _python_example(spec: TopicSpec, record: dict) -> list[str]:
    entity = spec.entity
    names = [f["name"] for f in record["fields"]]
    shown = ", ".join(
        f'{entity}["{name}"]'
        for name in [n for n in names if n not in _COMMON_FIELDS][:2] + ["deleted"]
    )
    counter = f'{entity}["revision"], ' if "revision" in names else ""
    return [
        "```python",
        "from confluent_kafka import Consumer",
        "from confluent_kafka.schema_registry import SchemaRegistryClient",
        "from confluent_kafka.schema_registry.avro import AvroDeserializer",
        "from confluent_kafka.serialization import MessageField, SerializationContext",
        "",
        f'topic = PREFIX + "{spec.name}"  # PREFIX = MM_KAFKA__TOPIC_PREFIX of the deployment',
        'avro = AvroDeserializer(SchemaRegistryClient({"url": SCHEMA_REGISTRY_URL}))',
        'consumer = Consumer({"bootstrap.servers": BOOTSTRAP_SERVERS, '
        f'"group.id": "analytics-{entity}",',
        '                     "auto.offset.reset": "earliest"})',
        "consumer.subscribe([topic])",
        "while True:",
        "    msg = consumer.poll(1.0)",
        "    if msg is None or msg.error():",
        "        continue",
        "    key = msg.key().decode()  # canonical id",
        "    if msg.value() is None:  # tombstone: the object was deleted",
        "        continue",
        f"    {entity} = avro(msg.value(), SerializationContext(topic, MessageField.VALUE))",
        f"    print(key, {counter}{shown})",
        "```",
    ]


def _kcat_example(spec: TopicSpec) -> list[str]:
    topic = f"${{PREFIX}}{spec.name}"
    return [
        "```sh",
        "# values decoded through the registry (a kcat built with Avro support)",
        f"kcat -C -b $BOOTSTRAP_SERVERS -t {topic} -e -J -s value=avro -r $SCHEMA_REGISTRY_URL",
        "# any kcat (Debian's too): keys, headers, tombstones; values stay Confluent-framed bytes",
        f"kcat -C -b $BOOTSTRAP_SERVERS -t {topic} -e -J",
        "```",
    ]


def _entity_section(spec: TopicSpec) -> list[str]:
    schema_path = SCHEMAS_DIR / (spec.schema or "")
    record = json.loads(schema_path.read_text(encoding="utf-8"))
    schema = _Schema(record)
    rows = schema.field_rows(record)
    out = [
        f"## {spec.entity}",
        "",
        f"{spec.description[:1].upper()}{spec.description[1:]}." if spec.description else "",
        "",
        "| | |",
        "|---|---|",
        f"| topic | `${{MM_KAFKA__TOPIC_PREFIX}}{spec.name}` |",
        f"| key | {_cell(spec.key)}; a UTF-8 string, not Avro |",
        f"| value | Avro record `{record.get('namespace', '')}.{record['name']}` "
        f"(`avro/{spec.schema}`), Confluent wire format, subject "
        f"`${{MM_KAFKA__TOPIC_PREFIX}}{spec.name}-value` |",
        f"| partitions | {spec.partitions} (by key: all changes of one object in one partition, in order) |",
        f"| retention | {_retention(spec)} |",
        f"| deletions | {_tombstones(spec)} |",
    ]
    out += ["", f"### Fields of {record['name']}", "", _cell(record.get("doc", "")), "", *rows]
    # Nested records are found while rendering the fields above (and inside each other).
    i = 0
    while i < len(schema.nested):
        nested, where = schema.nested[i]
        nested_rows = schema.field_rows(nested)
        out += [
            "",
            f"#### {_short(nested['name'])} (in `{where}`)",
            "",
            _cell(nested.get("doc", "")),
            "",
            *nested_rows,
        ]
        i += 1
    out += ["", "### Reading it", "", *_python_example(spec, record), "", *_kcat_example(spec), ""]
    return out


def render() -> str:
    """The committed text of docs/topic-catalog.md."""
    catalog = load_catalog(TOPICS_FILE)
    norm = sorted(
        (s for s in catalog.topics.values() if s.role == "norm" and s.schema),
        key=lambda s: s.entity,
    )
    present = [s for s in norm if (SCHEMAS_DIR / s.schema).exists()]
    missing = [s for s in norm if s not in present]
    out = [
        "# Topic catalog for analysts",
        "",
        "<!-- Generated by scripts/gen_topic_catalog.py from topics.yaml and avro/*.avsc "
        "(`make catalog`); do not edit by hand. -->",
        "",
        "Every canonical business object has one normalized topic: one record per real change, "
        "whichever system the change came from (1С, its CommerceML exchange, Bitrix24), after "
        "normalization and deduplication. The same rows are in PostgreSQL, in a table named "
        "after the entity.",
        "",
        "## How to read every topic",
        "",
        "- **Names.** Physical name = `MM_KAFKA__TOPIC_PREFIX` + the name below (the prefix is "
        "empty by default; with `prod.` the warehouse topic is `prod.norm.warehouse`).",
        "- **Key**: the canonical id as a plain UTF-8 string (a UUID; for objects 1С owns, the 1С "
        "`Ref_Key`). All changes of one object are in one partition, in order.",
        "- **Value**: Avro in the Confluent wire format (byte 0, the 4-byte schema id, the Avro "
        "body). The schema is in the registry at `SCHEMA_REGISTRY_URL` under the subject "
        "`<physical topic>-value` (TopicNameStrategy), so any registry-aware client decodes it: "
        "confluent-kafka's `AvroDeserializer`, `kcat -s value=avro -r`, Kafka Connect, ksqlDB, Spark.",
        "- **Types.** `uuid` is an Avro string; `decimal(p,s)` is Avro bytes with that precision "
        "and scale (money has scale 2); timestamps are Avro longs since the epoch in UTC; `X or "
        "null` is an optional value; `map<string, string>` holds ids in other systems.",
        "- **Headers** (CloudEvents 1.0, binary mode): `ce_id` (= the `event_id` field), "
        "`ce_type` (`ru.mastermobile.<entity>.<upsert|delete>.v1`), `ce_subject` (the id), "
        "`ce_time`, `ce_source`, `content-type: application/avro`, `x-request-id`, "
        "`mm.version` (the source version).",
        "- **At least once.** A record can arrive twice (after a worker restart); both copies "
        "have the same `event_id`. Where the schema has `revision`, keep the highest per id.",
        "- **Evolution.** Schemas change only BACKWARD-compatibly (new fields have defaults); "
        "`mmctl schemas check` and a test enforce it against the git history, and the registry "
        "refuses anything else.",
        "",
        "| entity | topic | key | partitions | retention |",
        "|---|---|---|---|---|",
        *[
            f"| [{s.entity}](#{s.entity}) | `{s.name}` | {_cell(s.key)} | {s.partitions} | "
            f"{_retention_short(s)} |"
            for s in present
        ],
        "",
    ]
    if missing:
        out += [
            "Declared in topics.yaml without a schema file yet: "
            + ", ".join(f"`{s.name}` (`avro/{s.schema}`)" for s in missing)
            + ".",
            "",
        ]
    for spec in present:
        out += _entity_section(spec)
    events = [
        s
        for s in catalog.topics.values()
        if s.role == "events" and s.schema and (SCHEMAS_DIR / s.schema).exists()
    ]
    if events:
        out += [
            "## Event topics",
            "",
            "Alerting and report events of the middleware itself (not entity changes). Values "
            "are JSON objects (UTF-8), not Avro: the committed Avro schema names their "
            "fields and types (a JSON value per field, by name), so a consumer can check "
            "them or load them into a typed table. Headers are CloudEvents 1.0 binary mode "
            "as above (`ce_id` stable per event: a repeat after a restart has the same id).",
            "",
        ]
        for spec in events:
            out += _event_section(spec)
    return "\n".join(out).rstrip("\n") + "\n"


def _event_section(spec: TopicSpec) -> list[str]:
    """One event topic (JSON values described by an Avro schema)."""
    record = json.loads((SCHEMAS_DIR / (spec.schema or "")).read_text(encoding="utf-8"))
    schema = _Schema(record)
    out = [
        f"### {spec.name}",
        "",
        f"{spec.description[:1].upper()}{spec.description[1:]}." if spec.description else "",
        "",
        "| | |",
        "|---|---|",
        f"| topic | `${{MM_KAFKA__TOPIC_PREFIX}}{spec.name}` |",
        f"| key | {_cell(spec.key)}; a UTF-8 string |",
        f"| value | JSON object with the fields of `{record.get('namespace', '')}.{record['name']}` "
        f"(`avro/{spec.schema}`) |",
        f"| partitions | {spec.partitions} (by key) |",
        f"| retention | {_retention(spec)} |",
        "",
        _cell(record.get("doc", "")),
        "",
        *schema.field_rows(record),
        "",
    ]
    return out


def main(argv: list[str]) -> int:
    """Regenerate (or with --check, compare) the committed catalog."""
    text = render()
    if "--check" in argv:
        current = CATALOG_FILE.read_text("utf-8") if CATALOG_FILE.exists() else ""
        if current != text:
            print(f"{CATALOG_FILE} is stale: run make catalog", file=sys.stderr)
            return 1
        return 0
    CATALOG_FILE.write_text(text, "utf-8")
    print(f"wrote {CATALOG_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
