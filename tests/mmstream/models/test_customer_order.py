"""CustomerOrder: a CommerceML order (site ids) round-trips through the committed schema."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import fastavro

from mmstream.avro_gen import avro_record
from mmstream.models.base import derived_id
from mmstream.models.customer_order import CustomerOrder
from mmstream.models.lines import GoodsLine

ROOT = Path(__file__).resolve().parents[3]


def test_entity_name():
    assert CustomerOrder.ENTITY == "customer_order"


def test_order_round_trips_through_the_committed_schema():
    order = CustomerOrder(
        id=derived_id("customer_order", "commerceml", "36"),
        source="commerceml",
        version="h",
        external_ids={"commerceml": "36"},
        number="36",
        currency="руб",
        date=datetime(2007, 10, 30, 12, 19, 27, tzinfo=UTC),
        amount=Decimal("6734.47"),
        status="[N] Принят",
        shipment_date=None,
        lines=(
            GoodsLine(
                section="Товары",
                line_number=1,
                content='Телевизор "JVC"',
                quantity=Decimal("1.000"),
                price=Decimal("6394.47"),
                amount=Decimal("6394.47"),
            ),
        ),
    )
    schema = fastavro.parse_schema(
        json.loads((ROOT / "avro/customer_order.avsc").read_text("utf-8"))
    )
    buf = io.BytesIO()
    fastavro.schemaless_writer(
        buf,
        schema,
        {
            **avro_record(order),
            "event_id": str(uuid.uuid4()),
            "changed_at": order.date,
            "revision": 1,
        },
    )
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, schema, schema)
    assert back["currency"] == "руб" and back["lines"][0]["content"] == 'Телевизор "JVC"'
    assert back["amount"] == Decimal("6734.47") and back["shipment_date"] is None
