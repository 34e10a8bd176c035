"""PriceType: ownership, conventions, Avro round trip."""

from __future__ import annotations

import uuid
from decimal import Decimal

from mmstream.models.catalog import entity_models
from mmstream.models.price_type import PriceType


def test_registered_and_owned_by_1c():
    assert entity_models()["price_type"] is PriceType and PriceType.OWNER == "onec"
    assert PriceType.owns("commerceml", "name") and not PriceType.owns("bitrix24", "name")
    assert all(info.description for info in PriceType.model_fields.values())


def test_round_trip(avro_round_trip):
    t = PriceType(
        id=uuid.uuid4(),
        source="onec",
        version="v",
        name="Мелкооптовая",
        markup_percent=Decimal("-5.5"),
        includes_vat=False,
    )
    back = avro_round_trip(t)
    assert back["markup_percent"] == Decimal("-5.5000") and back["includes_vat"] is False
    assert back["for_sale"] is None and back["name"] == "Мелкооптовая"
