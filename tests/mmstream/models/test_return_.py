"""Return: 1С owns the document, Bitrix24 the courier's report, the middleware the status."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mmstream.models.document import AccountingDocument
from mmstream.models.return_ import Return
from mmstream.settings import CourierObjectSettings
from stages.normalize.bitrix24_deal import normalize as from_deal
from stages.normalize.onec_return import normalize as from_onec
from stages.normalize.registry import Context
from tests.support.stack import FIXTURES


def test_entity_name_is_the_keyword():
    assert Return.ENTITY == "return" and Return.OWNER == "onec"
    assert issubclass(Return, AccountingDocument)


@pytest.mark.parametrize(
    ("field", "owner"),
    [
        ("number", "onec"),
        ("lines", "onec"),
        ("shipment_id", "onec"),
        ("deleted", "onec"),
        ("status", "middleware"),
        ("title", "bitrix24"),
        ("courier_stage", "bitrix24"),
        ("courier_amount", "bitrix24"),
        ("courier_shipment_id", "bitrix24"),
        ("reported_at", "bitrix24"),
    ],
)
def test_each_system_owns_its_fields(field, owner):
    assert Return.owner_of(field) == owner


def test_every_content_field_is_described():
    assert all(Return.model_fields[n].description for n in Return.content_fields())


def test_real_1c_document_and_courier_deal_round_trip(avro_round_trip):
    doc = json.loads(
        (FIXTURES / "onec_odata/bp30_Document_RealizatsiyaTovarovUslug.json").read_text("utf-8")
    )
    (onec,) = from_onec(doc["value"][0], {}, Context())
    back = avro_round_trip(onec)
    assert back["amount"] == Decimal("150129.00") and len(back["lines"]) == 2
    assert back["lines"][1]["product_id"] == onec.lines[1].product_id
    ctx = Context(couriers=CourierObjectSettings(return_category_id=5))
    (courier,) = from_deal(
        {
            "ID": "9",
            "CATEGORY_ID": "5",
            "TITLE": "Возврат: брак",
            "OPPORTUNITY": "400",
            "DATE_MODIFY": "2024-06-03T12:00:00+03:00",
            "DATE_CREATE": "2024-06-03T11:00:00+03:00",
        },
        {},
        ctx,
    )
    back = avro_round_trip(courier)
    assert back["title"] == "Возврат: брак" and back["courier_amount"] == Decimal("400.00")
    assert back["lines"] == [] and back["date"] is None
