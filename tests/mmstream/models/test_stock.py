"""Stock: identity from warehouse × product × characteristic, ownership, Avro round trip."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.base import derived_id
from mmstream.models.bounds import OutOfBounds
from mmstream.models.catalog import entity_models
from mmstream.models.stock import Stock, stock_id

PRODUCT, STORE, VARIANT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_registered_and_owned_by_1c():
    assert entity_models()["stock"] is Stock and Stock.OWNER == "onec"
    assert not any(Stock.owns("bitrix24", f) for f in Stock.content_fields())
    assert Stock.owns("commerceml", "quantity")
    assert all(info.description for info in Stock.model_fields.values())
    assert Stock.model_fields["warehouse_id"].json_schema_extra == {"ref": "warehouse"}
    assert Stock.model_fields["product_id"].json_schema_extra == {"ref": "product"}


def test_the_id_is_derived_from_warehouse_product_and_characteristic():
    empty = "00000000-0000-0000-0000-000000000000"
    assert stock_id(STORE, PRODUCT, None) == derived_id(
        "stock", "onec", f"{STORE}|{PRODUCT}|{empty}"
    )
    assert stock_id(None, PRODUCT, None) == derived_id("stock", "onec", f"*|{PRODUCT}|{empty}")
    ids = {
        stock_id(STORE, PRODUCT, None),
        stock_id(STORE, PRODUCT, VARIANT),
        stock_id(None, PRODUCT, VARIANT),
        stock_id(uuid.uuid4(), PRODUCT, VARIANT),
        stock_id(STORE, VARIANT, PRODUCT),
    }
    assert len(ids) == 5


def test_round_trip(avro_round_trip):
    moment = datetime(2024, 5, 1, 10, tzinfo=ZoneInfo("Europe/Moscow"))
    s = Stock(
        id=stock_id(STORE, PRODUCT, VARIANT),
        source="onec",
        version="v",
        source_stamp=moment,
        warehouse_id=STORE,
        product_id=PRODUCT,
        characteristic_id=VARIANT,
        quantity=Decimal("-2.5"),
        reserve=Decimal(1),
        as_of=moment,
        warehouse_name="Курьер Иванов",
    )
    back = avro_round_trip(s)
    assert (back["quantity"], back["reserve"]) == (Decimal("-2.5000"), Decimal("1.0000"))
    assert back["as_of"] == moment and back["warehouse_name"] == "Курьер Иванов"


def test_a_quantity_beyond_decimal_20_4_is_refused():
    with pytest.raises(OutOfBounds, match="quantity"):
        Stock(id=uuid.uuid4(), source="onec", version="v", quantity=Decimal("1e16"))
