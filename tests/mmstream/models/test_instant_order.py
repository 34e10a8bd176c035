"""InstantOrder: Bitrix24 owns it, 1С its document, the middleware its status."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mmstream.models.instant_order import InstantOrder
from mmstream.settings import CourierObjectSettings
from stages.normalize.bitrix24_deal import normalize
from stages.normalize.registry import Context


def test_entity_and_owner():
    assert (InstantOrder.ENTITY, InstantOrder.OWNER) == ("instant_order", "bitrix24")


@pytest.mark.parametrize(
    ("field", "owner"),
    [
        ("title", "bitrix24"),
        ("amount", "bitrix24"),
        ("courier_id", "bitrix24"),
        ("deleted", "bitrix24"),
        ("status", "middleware"),
        ("onec_document_id", "onec"),
        ("onec_number", "onec"),
        ("onec_posted", "onec"),
    ],
)
def test_each_system_owns_its_fields(field, owner):
    assert InstantOrder.owner_of(field) == owner
    assert not InstantOrder.owns("bitrix24" if owner != "bitrix24" else "onec", field)


def test_every_content_field_is_described():
    assert all(InstantOrder.model_fields[n].description for n in InstantOrder.content_fields())


def test_deal_version_round_trips(avro_round_trip):
    ctx = Context(couriers=CourierObjectSettings(instant_order_category_id=3))
    (order,) = normalize(
        {
            "ID": "7",
            "CATEGORY_ID": "3",
            "TITLE": "Заказ у подъезда",
            "OPPORTUNITY": "120.5",
            "CURRENCY_ID": "RUB",
            "CLOSED": "N",
            "DATE_MODIFY": "2024-06-03T12:00:00+03:00",
        },
        {},
        ctx,
    )
    back = avro_round_trip(order)
    assert back["title"] == "Заказ у подъезда" and back["amount"] == Decimal("120.50")
    assert back["status"] == "new" and back["onec_document_id"] is None
