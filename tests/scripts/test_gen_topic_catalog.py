"""The analysts' topic catalog (docs/topic-catalog.md) is what topics.yaml and avro/ generate."""

from __future__ import annotations

import json

from mmstream.topics import load_catalog
from scripts.gen_topic_catalog import CATALOG_FILE, SCHEMAS_DIR, TOPICS_FILE, _Schema, render


def test_committed_catalog_is_current():
    assert CATALOG_FILE.exists(), "missing docs/topic-catalog.md: run make catalog"
    assert CATALOG_FILE.read_text("utf-8") == render(), (
        "stale docs/topic-catalog.md: run make catalog"
    )


def _field_names(node, out: set[str]) -> set[str]:
    if isinstance(node, list):
        for branch in node:
            _field_names(branch, out)
    elif isinstance(node, dict):
        for field in node.get("fields", ()):
            out.add(field["name"])
            _field_names(field["type"], out)
        for inner in ("items", "values"):
            _field_names(node.get(inner), out)
    return out


def test_every_normalized_topic_and_every_field_is_documented():
    text = render()
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}
    norm = [s for s in load_catalog(TOPICS_FILE).topics.values() if s.role == "norm"]
    assert norm
    for spec in norm:
        if not (SCHEMAS_DIR / spec.schema).exists():
            assert f"`{spec.name}` (`avro/{spec.schema}`)" in text  # listed as not yet there
            continue
        section = sections[spec.entity]
        assert f"`${{MM_KAFKA__TOPIC_PREFIX}}{spec.name}`" in section
        assert f"| partitions | {spec.partitions} " in section
        schema = json.loads((SCHEMAS_DIR / spec.schema).read_text("utf-8"))
        missing = [f for f in _field_names(schema, set()) if f"| `{f}` |" not in section]
        assert not missing, f"{spec.entity}: fields not in the catalog: {missing}"


def test_types_read_as_analysts_expect_and_nested_records_are_listed_once():
    line = {
        "type": "record",
        "name": "ns.Line",
        "doc": "a line",
        "fields": [
            {
                "name": "amount",
                "type": [
                    "null",
                    {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 2},
                ],
            }
        ],
    }
    record = {
        "type": "record",
        "name": "ns.Doc",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "lines", "type": {"type": "array", "items": line}, "default": []},
            {"name": "more", "type": {"type": "array", "items": "ns.Line"}},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "ids", "type": {"type": "map", "values": "string"}, "default": {}},
        ],
    }
    schema = _Schema(record)
    rows = schema.field_rows(record)
    assert rows[2] == "| `at` | timestamp (µs, UTC) | required |  |"
    assert rows[3] == "| `lines` | array<Line> | `[]` |  |"
    assert rows[4] == "| `more` | array<Line> | required |  |"
    assert "enum {A, B}" in rows[5] and "map<string, string>" in rows[6]
    assert [(r["name"], where) for r, where in schema.nested] == [("ns.Line", "lines")]
    assert "decimal(20,2) or null" in schema.field_rows(line)[2]
