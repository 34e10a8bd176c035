"""Warehouse: ownership, Avro round trip, and the schema change stays BACKWARD compatible."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest

from mmstream.models.catalog import entity_models
from mmstream.models.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[3]


def test_registered_and_owned_by_1c():
    assert entity_models()["warehouse"] is Warehouse and Warehouse.OWNER == "onec"
    assert not any(Warehouse.owns("bitrix24", f) for f in Warehouse.content_fields())
    assert all(info.description for info in Warehouse.model_fields.values())


def test_round_trip(avro_round_trip):
    w = Warehouse(
        id=uuid.uuid4(),
        source="onec",
        version="v",
        name="Склад №1",
        kind="Розничный",
        retail_price_type_id=uuid.uuid4(),
        phones=("+7 343 000",),
    )
    back = avro_round_trip(w)
    assert back["kind"] == "Розничный" and back["phones"] == ["+7 343 000"]
    assert str(back["retail_price_type_id"]) == str(w.retail_price_type_id)


def test_records_of_the_last_committed_schema_read_with_the_current_one():
    old_text = subprocess.run(
        ["git", "show", "HEAD:avro/warehouse.avsc"], cwd=ROOT, capture_output=True, text=True
    )
    if old_text.returncode != 0:
        pytest.skip("no committed warehouse schema to compare with")
    old = fastavro.parse_schema(json.loads(old_text.stdout))
    new = fastavro.parse_schema(json.loads((ROOT / "avro/warehouse.avsc").read_text("utf-8")))
    written = {
        "id": str(uuid.uuid4()),
        "source": "onec",
        "version": "v",
        "source_stamp": None,
        "deleted": False,
        "external_ids": {},
        "code": "1",
        "name": "Склад",
        "parent_id": None,
        "is_folder": False,
        "address": "",
        "event_id": str(uuid.uuid4()),
        "changed_at": datetime(2026, 1, 1, tzinfo=UTC),
        "revision": 1,
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old, written)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, old, new)
    assert back["name"] == "Склад" and back["kind"] == "" and back["phones"] == []
    assert back["retail_price_type_id"] is None
