"""The pure parts of ``mmctl export``: Avro -> DuckDB column types, the snapshot rule (highest
revision wins, tombstones delete, late duplicates stay dead) and the JSON rows DuckDB reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from mmstream.cli.export import Snapshot, columns, duckdb_type, json_line

AVRO = Path(__file__).resolve().parents[3] / "avro"


@pytest.mark.parametrize(
    ("avro", "expected"),
    [
        ({"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4}, "DECIMAL(20,4)"),
        (
            ["null", {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 2}],
            "DECIMAL(20,2)",
        ),
        ({"type": "bytes", "logicalType": "decimal", "precision": 60, "scale": 2}, "VARCHAR"),
        ({"type": "long", "logicalType": "timestamp-millis"}, "TIMESTAMPTZ"),
        (["null", {"type": "long", "logicalType": "timestamp-micros"}], "TIMESTAMPTZ"),
        ({"type": "long", "logicalType": "local-timestamp-millis"}, "TIMESTAMP"),
        ({"type": "int", "logicalType": "date"}, "DATE"),
        ({"type": "string", "logicalType": "uuid"}, "VARCHAR"),
        ("long", "BIGINT"),
        ("int", "INTEGER"),
        ("double", "DOUBLE"),
        ("boolean", "BOOLEAN"),
        ({"type": "map", "values": "string"}, "MAP(VARCHAR, VARCHAR)"),
        ({"type": "array", "items": "string"}, "VARCHAR[]"),
        ({"type": "enum", "name": "Kind", "symbols": ["A", "B"]}, "VARCHAR"),
        (["null", "string", "long"], "VARCHAR"),  # no common type: its JSON text
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
            'STRUCT("qty" DECIMAL(20,4), "order" VARCHAR)[]',
        ),
    ],
)
def test_avro_types_map_to_duckdb_types_that_keep_their_meaning(avro, expected):
    assert duckdb_type(avro) == expected


def test_a_named_type_referenced_again_maps_like_its_definition():
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "n",
        "fields": [
            {
                "name": "a",
                "type": {
                    "type": "record",
                    "name": "Money",
                    "fields": [{"name": "v", "type": "double"}],
                },
            },
            {"name": "b", "type": ["null", "n.Money"]},
            {"name": "c", "type": "Money"},
        ],
    }
    assert columns(schema) == [
        ("a", 'STRUCT("v" DOUBLE)'),
        ("b", 'STRUCT("v" DOUBLE)'),
        ("c", 'STRUCT("v" DOUBLE)'),
    ]
    with pytest.raises(ValueError, match="unknown Avro type"):
        duckdb_type("Nowhere")


def test_every_committed_schema_maps_to_columns():
    for path in sorted(AVRO.glob("*.avsc")):
        schema = json.loads(path.read_text("utf-8"))
        cols = columns(schema)
        assert [n for n, _ in cols] == [f["name"] for f in schema["fields"]], path.name
        if "changed_at" in dict(cols):  # the envelope's timestamp-millis
            assert dict(cols)["changed_at"] == "TIMESTAMPTZ", path.name


def _rec(rev: int, **fields) -> dict:
    return {"revision": rev, **fields}


def test_highest_revision_wins_and_a_late_duplicate_is_ignored():
    snap = Snapshot(by_revision=True)
    for rev in (1, 3, 2, 3):
        snap.apply("a", _rec(rev, n=rev))
    assert snap.rows == {"a": {"revision": 3, "n": 3}}
    assert snap.stale == 1


def test_a_tombstone_deletes_and_a_duplicate_of_the_deleted_revision_stays_deleted():
    snap = Snapshot(by_revision=True)
    snap.apply("a", _rec(1))
    snap.apply("a", _rec(2, deleted=True))
    snap.apply("a", None)
    snap.apply("a", _rec(2, deleted=True))  # redelivered after the tombstone
    snap.apply("a", _rec(1))
    assert snap.rows == {}
    snap.apply("a", _rec(3))  # a real newer change brings it back
    assert snap.rows == {"a": {"revision": 3}}
    assert snap.tombstones == 1


def test_a_tombstone_for_a_key_never_seen_and_then_a_first_record():
    snap = Snapshot(by_revision=True)
    snap.apply("a", None)  # the records before it were compacted away
    snap.apply("a", _rec(0))
    assert snap.rows == {"a": {"revision": 0}}


def test_without_revision_offset_order_decides():
    snap = Snapshot(by_revision=False)
    snap.apply("p", {"name": "old"})
    snap.apply("p", {"name": "new"})
    snap.apply("q", {"name": "gone"})
    snap.apply("q", None)
    assert snap.rows == {"p": {"name": "new"}}


def test_json_line_keeps_decimals_exact_and_times_in_iso_form():
    row = {
        "id": UUID(int=1),
        "amount": Decimal("12.3400"),
        "day": date(2026, 1, 2),
        "at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "raw": b"\x00\x01",
        "mixed": {"a": 1},
        "extra": "not exported",
    }
    line = json.loads(
        json_line(
            row,
            ["id", "amount", "day", "at", "raw", "mixed", "missing"],
            frozenset({"id", "mixed"}),
        )
    )
    assert line == {
        "id": "00000000-0000-0000-0000-000000000001",
        "amount": "12.3400",
        "day": "2026-01-02",
        "at": "2026-01-02T03:04:05.678000+00:00",
        "raw": "AAE=",
        "mixed": '{"a": 1}',
        "missing": None,
    }
