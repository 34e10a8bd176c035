"""Shipment: a real normalized shipment round-trips through the committed Avro schema."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import fastavro

from mmstream.avro_gen import avro_record
from mmstream.models.shipment import Shipment
from stages.normalize.onec_shipment import normalize
from stages.normalize.registry import Context
from tests.support.stack import FIXTURES

ROOT = Path(__file__).resolve().parents[3]


def test_entity_name():
    assert Shipment.ENTITY == "shipment"


def test_real_shipment_round_trips_through_the_committed_schema():
    raw = json.loads(
        ((FIXTURES / "onec_odata") / "bp30_Document_RealizatsiyaTovarovUslug.json").read_text(
            encoding="utf-8"
        )
    )
    (doc,) = normalize(raw["value"][0], {}, Context())
    schema = fastavro.parse_schema(json.loads((ROOT / "avro/shipment.avsc").read_text("utf-8")))
    record = {
        **avro_record(doc),
        "event_id": str(uuid.uuid4()),
        "changed_at": datetime(2026, 1, 1, tzinfo=UTC),
        "revision": 1,
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, schema, schema)
    assert back["amount"] == Decimal("150129.00") and back["date"] == doc.date
    assert back["lines"][0]["vat_amount"] == Decimal("22729.17")
    assert back["lines"][0]["vat_rate"] == "НДС20" and back["contract_id"] is None
