"""Price: identity without a Ref_Key, ownership, Avro round trip."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from mmstream.models.base import derived_id
from mmstream.models.catalog import entity_models
from mmstream.models.price import Price, price_id

PRODUCT, TYPE = uuid.uuid4(), uuid.uuid4()


def test_registered_and_owned_by_1c():
    assert entity_models()["price"] is Price and Price.OWNER == "onec"
    assert not any(Price.owns("bitrix24", f) for f in Price.content_fields())
    assert all(info.description for info in Price.model_fields.values())
    assert Price.model_fields["product_id"].json_schema_extra == {"ref": "product"}
    assert Price.model_fields["price_type_id"].json_schema_extra == {"ref": "price_type"}


def test_the_id_is_derived_from_product_characteristic_and_type():
    empty = "00000000-0000-0000-0000-000000000000"
    assert price_id(PRODUCT, None, TYPE) == price_id(PRODUCT, empty, TYPE)
    assert price_id(PRODUCT, None, TYPE) == derived_id("price", "onec", f"{PRODUCT}|{empty}|{TYPE}")
    variant = uuid.uuid4()
    assert price_id(PRODUCT, variant, TYPE) == price_id(PRODUCT, str(variant), TYPE)
    assert price_id(PRODUCT, variant, TYPE) != price_id(PRODUCT, None, TYPE)
    assert price_id(PRODUCT, None, TYPE) != price_id(TYPE, None, PRODUCT)


def test_round_trip(avro_round_trip):
    moment = datetime(2024, 5, 1, tzinfo=ZoneInfo("Europe/Moscow"))
    p = Price(
        id=price_id(PRODUCT, None, TYPE),
        source="onec",
        version="v",
        source_stamp=moment,
        product_id=PRODUCT,
        price_type_id=TYPE,
        price=Decimal("1250.5"),
        currency="руб",
        valid_from=moment,
    )
    back = avro_round_trip(p)
    assert back["price"] == Decimal("1250.5000") and back["currency"] == "руб"
    assert back["valid_from"] == moment and back["characteristic_id"] is None
