"""Product properties (CommerceML ``ЗначенияСвойств``) on the canonical product, and on
norm.product as the outbox relay writes it (the merged row's JSON through avro/product.avsc)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest

from mmstream.errors import InvalidRecord
from mmstream.models.product import ProductProperty
from stages.normalize.onec_product import parse

SCHEMA = fastavro.parse_schema(
    json.loads((Path(__file__).resolve().parents[3] / "avro" / "product.avsc").read_text("utf-8"))
)
BASE = {
    "_source": "commerceml",
    "id": "7d2dcab3-e453-11e6-9483-00155d020201",
    "characteristic_id": None,
    "name": "Чайник",
    "version": "b" * 64,
    "deleted": False,
}
COLOR, RED = "3c2a6c20-7411-11e2-8b7a-0019db6b1a01", "3c2a6c21-7411-11e2-8b7a-0019db6b1a01"


def _parse(properties):
    return parse(json.dumps({**BASE, "properties": properties}, ensure_ascii=False).encode())


def test_a_dictionary_value_keeps_its_id_and_a_plain_value_has_none():
    p = _parse(
        [
            {
                "id": COLOR,
                "name": "Цвет",
                "type": "Справочник",
                "values": [RED],
                "labels": ["Красный"],
                "value_ids": [RED],
            },
            {
                "id": "POWER",
                "name": "Мощность",
                "type": "Число",
                "values": ["2000"],
                "labels": ["2000"],
                "value_ids": [None],
            },
        ]
    )
    assert p.properties == (
        ProductProperty(id=COLOR, name="Цвет", value="Красный", value_id=RED),
        ProductProperty(id="POWER", name="Мощность", value="2000"),
    )


def test_several_values_of_one_property_are_one_item_each_in_order():
    p = _parse(
        [
            {
                "id": "TAGS",
                "name": "Метки",
                "values": ["новинка", "хит"],
                "labels": ["новинка", "хит"],
                "value_ids": [None, None],
            }
        ]
    )
    assert [(i.id, i.value) for i in p.properties] == [("TAGS", "новинка"), ("TAGS", "хит")]


def test_a_record_of_the_bridge_before_value_ids_still_maps():
    # Raw records written before value_ids existed (replays, the DLQ) carry values and labels.
    p = _parse([{"id": COLOR, "name": "Цвет", "values": [RED], "labels": ["Красный"]}])
    assert p.properties == (ProductProperty(id=COLOR, name="Цвет", value="Красный"),)


def test_a_value_without_its_property_id_is_left_out_and_no_properties_is_empty():
    assert _parse([{"id": None, "name": None, "values": ["x"], "labels": ["x"]}]).properties == ()
    assert parse(json.dumps(BASE).encode()).properties == ()


@pytest.mark.parametrize(
    "properties",
    [
        "Цвет",
        [["Цвет"]],
        [{"id": COLOR, "values": "Красный"}],
        [{"id": COLOR, "values": [RED], "labels": {"x": 1}}],
    ],
)
def test_malformed_properties_are_an_invalid_record(properties):
    with pytest.raises(InvalidRecord, match="properties"):
        _parse(properties)


def test_a_value_no_later_stage_can_carry_is_refused():
    with pytest.raises(InvalidRecord, match="NUL"):
        _parse([{"id": COLOR, "values": ["a\x00b"], "labels": ["a\x00b"]}])


def _avro(payload: dict) -> dict:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, SCHEMA, payload)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, SCHEMA)


def test_norm_product_carries_the_properties_and_reads_rows_written_before_them():
    p = _parse(
        [{"id": COLOR, "name": "Цвет", "values": [RED], "labels": ["Красный"], "value_ids": [RED]}]
    )
    # What the sink's outbox payload holds (jsonb of the row) plus the relay's envelope.
    row = {
        "id": str(p.id),
        "source": p.source,
        "version": p.version,
        "code": p.code,
        "name": p.name,
        "full_name": p.full_name,
        "article": p.article,
        "barcode": p.barcode,
        "parent_id": None,
        "unit_id": None,
        "is_folder": False,
        "is_service": False,
        "deleted": False,
        "properties": [i.model_dump() for i in p.properties],
        "event_id": "0b7c2d1e-5f7a-4a53-9a6e-1f1f1f1f1f1f",
        "changed_at": datetime(2026, 12, 7, tzinfo=UTC),
    }
    assert _avro(row)["properties"] == [
        {"id": COLOR, "name": "Цвет", "value": "Красный", "value_id": RED}
    ]
    # An outbox row merged before migration 0017 has no "properties": the default applies.
    older = {k: v for k, v in row.items() if k != "properties"}
    assert _avro(older)["properties"] == []
