"""raw.bitrix24.deal -> InstantOrder or Return by funnel (CATEGORY_ID)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.base import derived_id
from mmstream.models.instant_order import InstantOrder
from mmstream.models.return_ import Return
from mmstream.settings import CourierObjectSettings
from stages.normalize.bitrix24_deal import normalize
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

YEKAT = ZoneInfo("Asia/Yekaterinburg")
FUNNELS = {"instant_order_category_id": 3, "return_category_id": 5}
OURS = uuid.UUID("3f9a1c52-7e0b-4d4e-9a51-2b1c0f6a7e11")


def ctx(**couriers) -> Context:
    return Context(portal_tz=YEKAT, couriers=CourierObjectSettings(**{**FUNNELS, **couriers}))


def deal(**fields) -> dict:
    """A crm.deal.get answer as the portal writes it: every value a string."""
    return {
        "ID": "35943",
        "TITLE": "Срочный заказ: Ленинский пр-т, 93К2",
        "CATEGORY_ID": "3",
        "STAGE_ID": "C3:NEW",
        "CLOSED": "N",
        "OPPORTUNITY": "4590.00",
        "CURRENCY_ID": "RUB",
        "COMPANY_ID": "0",
        "CONTACT_ID": "77",
        "ASSIGNED_BY_ID": "17",
        "COMMENTS": None,
        "ORIGIN_ID": None,
        "DATE_CREATE": "2024-05-21T10:00:00+03:00",
        "DATE_MODIFY": "2024-05-21T10:05:00+03:00",
        "CLOSEDATE": "2024-05-28T03:00:00+03:00",
        "_event": {"kind": "UPDATE"},
        **fields,
    }


def test_the_topic_is_claimed_here():
    assert normalizers()["raw.bitrix24.deal"] is normalize


def test_real_deal_of_the_general_funnel_is_no_courier_object(bitrix24_deal_stub):
    assert normalize(bitrix24_deal_stub, {}, ctx()) == []


def test_real_deal_without_a_modification_time_is_refused(bitrix24_deal_stub):
    with pytest.raises(Unnormalizable, match="DATE_MODIFY"):
        normalize(bitrix24_deal_stub, {}, ctx(instant_order_category_id=0))


def test_unconfigured_funnels_give_nothing():
    assert normalize(deal(), {}, Context()) == []


def test_instant_order_from_its_funnel():
    (out,) = normalize(deal(), {}, ctx())
    assert isinstance(out, InstantOrder)
    assert out.id == derived_id("instant_order", "bitrix24", "deal:35943")
    assert out.external_ids == {"bitrix24": "deal:35943"}
    assert (out.source, out.version) == ("bitrix24", "2024-05-21T10:05:00+03:00")
    assert out.title == "Срочный заказ: Ленинский пр-т, 93К2"
    assert (out.amount, out.currency) == (Decimal("4590.00"), "RUB")
    assert out.closed is False and out.closed_at is None  # CLOSEDATE of an open deal is a plan
    assert out.counterparty_id == derived_id("counterparty", "bitrix24", "contact:77")
    assert out.courier_id == derived_id("employee", "bitrix24", "user:17")
    assert out.comment == ""
    assert (out.status, out.onec_document_id) == ("new", None)  # middleware's and 1С's


def test_closed_deal_company_and_mapped_address():
    (out,) = normalize(
        deal(CLOSED="Y", STAGE_ID="C3:WON", COMPANY_ID="12", UF_CRM_MM_ADDRESS=["ул. Мира, 5"]),
        {},
        ctx(deal_fields={"delivery_address": "UF_CRM_MM_ADDRESS"}),
    )
    assert out.closed and out.closed_at == datetime.fromisoformat("2024-05-28T03:00:00+03:00")
    assert out.counterparty_id == derived_id("counterparty", "bitrix24", "company:12")
    assert out.delivery_address == "ул. Мира, 5"


def test_date_without_offset_is_the_portal_wall_clock():
    (out,) = normalize(deal(DATE_MODIFY="2024-05-21T10:05:00"), {}, ctx())
    assert out.source_stamp == datetime(2024, 5, 21, 10, 5, tzinfo=YEKAT)


def test_our_id_in_origin_id_is_the_canonical_id():
    (out,) = normalize(deal(ORIGIN_ID=str(OURS)), {}, ctx())
    assert out.id == OURS
    (other,) = normalize(deal(ORIGIN_ID="ext-42"), {}, ctx())  # another integration's key
    assert other.id == derived_id("instant_order", "bitrix24", "deal:35943")


def test_return_from_its_funnel_carries_the_courier_fields():
    shipment = "8b9660f6-6332-11ec-ad72-000c29b45b09"
    (out,) = normalize(
        deal(
            CATEGORY_ID="5",
            STAGE_ID="C5:NEW",
            COMMENTS="Брак упаковки",
            UF_CRM_MM_SHIPMENT=shipment,
        ),
        {},
        ctx(deal_fields={"shipment_id": "UF_CRM_MM_SHIPMENT"}),
    )
    assert isinstance(out, Return)
    assert out.id == derived_id("return", "bitrix24", "deal:35943")
    assert (out.courier_stage, out.courier_comment) == ("C5:NEW", "Брак упаковки")
    assert (out.courier_amount, out.courier_currency) == (Decimal("4590.00"), "RUB")
    assert str(out.courier_shipment_id) == shipment
    assert out.reported_at == datetime.fromisoformat("2024-05-21T10:00:00+03:00")
    assert (out.shipment_id, out.lines, out.status) == (None, (), "new")  # 1С's, middleware's


def test_all_zero_guid_in_the_shipment_field_is_no_reference():
    (out,) = normalize(
        deal(CATEGORY_ID="5", UF_CRM_MM_SHIPMENT="00000000-0000-0000-0000-000000000000"),
        {},
        ctx(deal_fields={"shipment_id": "UF_CRM_MM_SHIPMENT"}),
    )
    assert out.courier_shipment_id is None


@pytest.mark.parametrize("value", [None, {"_deleted": True, "_key": "deal:35943"}])
def test_deleted_deal_gives_nothing(value):
    assert normalize(value, {}, ctx()) == []


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"CLOSED": "может быть"}, "CLOSED"),
        ({"OPPORTUNITY": "1 000,00 руб"}, "OPPORTUNITY"),
        ({"CATEGORY_ID": "воронка"}, "CATEGORY_ID"),
        ({"ID": ""}, "ID"),
        ({"DATE_CREATE": "21.05.2024"}, "DATE_CREATE"),
        ({"TITLE": "a\x00b"}, "NUL"),
    ],
)
def test_rejections_name_the_field(patch, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize(deal(**patch), {}, ctx())


def test_numbers_with_comma_and_spaces_are_numbers():
    (out,) = normalize(deal(OPPORTUNITY="1 000,50"), {}, ctx())
    assert out.amount == Decimal("1000.50")
