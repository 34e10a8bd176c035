"""The shared line models: described fields, references to entities, money scale."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from mmstream.avro_gen import schema_for
from mmstream.models.lines import GoodsLine, PaymentLine
from mmstream.models.shipment import Shipment

ENTITIES = {
    "product",
    "counterparty",
    "warehouse",
    "organization",
    "price_type",
    "price",
    "employee",
    "customer_order",
    "shipment",
    "delivery_task",
    "instant_order",
    "return",
    "cash_receipt",
    "cash_expense",
    "advance_report",
}


@pytest.mark.parametrize("model", [GoodsLine, PaymentLine])
def test_every_field_is_described_and_refs_name_entities(model):
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"
        extra = info.json_schema_extra or {}
        if "ref" in extra:
            assert extra["ref"] in ENTITIES, f"{model.__name__}.{name} -> {extra['ref']}"


def test_lines_are_frozen():
    line = GoodsLine(section="Товары", line_number=1)
    with pytest.raises(ValidationError):
        line.quantity = Decimal(1)  # type: ignore[misc]


def test_money_has_scale_2_and_quantities_scale_4():
    schema = schema_for(Shipment, "shipment")
    lines = next(f for f in schema["fields"] if f["name"] == "lines")["type"]["items"]
    scales = {
        f["name"]: f["type"][1]["scale"]
        for f in lines["fields"]
        if isinstance(f["type"], list)
        and isinstance(f["type"][1], dict)
        and f["type"][1].get("logicalType") == "decimal"
    }
    assert scales == {"quantity": 4, "price": 4, "amount": 2, "vat_percent": 2, "vat_amount": 2}
