"""raw.bitrix24.item -> DeliveryTask or Return by smart process, on real crm.item answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.base import derived_id
from mmstream.models.delivery_task import DeliveryTask
from mmstream.models.return_ import Return
from mmstream.settings import CourierObjectSettings
from stages.normalize.bitrix24_item import normalize
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

OURS = uuid.UUID("3f9a1c52-7e0b-4d4e-9a51-2b1c0f6a7e11")
SHIPMENT = uuid.UUID("8b9660f6-6332-11ec-ad72-000c29b45b09")
MSK = ZoneInfo("Europe/Moscow")
STAMP = "2024-05-21T15:14:27+03:00"


def ctx(**couriers) -> Context:
    return Context(portal_tz=MSK, couriers=CourierObjectSettings(**couriers))


DELIVERY = {"delivery_entity_type_id": 180, "return_entity_type_id": 133}


def delivery(item: dict, **extra) -> dict:
    return {**item, "entityTypeId": 180, "updatedTime": STAMP, "xmlId": str(OURS), **extra}


def test_the_topic_is_claimed_here():
    assert normalizers()["raw.bitrix24.item"] is normalize


def test_other_smart_processes_give_nothing(bitrix24_item_added):
    assert normalize(bitrix24_item_added, {}, ctx()) == []
    assert normalize(bitrix24_item_added, {}, ctx(delivery_entity_type_id=140)) == []


def test_real_items_without_our_id_are_not_delivery_tasks(bitrix24_items):
    found = [
        normalize({**i, "entityTypeId": 180, "updatedTime": STAMP}, {}, ctx(**DELIVERY))
        for i in bitrix24_items
    ]
    assert found == [[]] * len(bitrix24_items)


def test_real_item_with_our_id_and_a_mapped_uf_date(bitrix24_items):
    item = bitrix24_items[1]  # Cyrillic title, ufCrm11_1712074666 with an offset
    out, status = normalize(
        delivery(item, assignedById=5, stageId="DT180_3:PREPARATION"),
        {},
        ctx(**DELIVERY, delivery_item_fields={"delivered_at": "ufCrm11_1712074666"}),
    )
    assert isinstance(out, DeliveryTask) and out.id == OURS
    assert out.external_ids == {"bitrix24": f"item:180:{item['id']}"}
    assert out.delivered_at == datetime.fromisoformat("2024-05-29T03:00:00+03:00")
    assert out.courier_status == "DT180_3:PREPARATION"
    assert out.courier_id == derived_id("employee", "bitrix24", "user:5")
    assert out.source_stamp == datetime.fromisoformat(STAMP)
    # The portal's explicit delivery date wins over the stage; the status is the
    # middleware's own version at the courier's stamp.
    assert (status.id, status.source, status.status) == (OURS, "middleware", "delivered")
    assert (status.version, status.source_stamp) == (f"{STAMP}:delivered", out.source_stamp)


@pytest.mark.parametrize(
    ("stage", "delivered", "failed", "derived"),
    [
        ("DT180_3:SUCCESS", True, False, "delivered"),
        ("DT180_3:FAIL", False, True, "failed"),
        ("DT180_3:NEW", False, False, "assigned"),
    ],
)
def test_final_stage_dates_the_outcome(stage, delivered, failed, derived):
    moved = "2024-05-21T16:00:00+03:00"
    out, status = normalize(
        delivery({"id": 5}, stageId=stage, movedTime=moved), {}, ctx(**DELIVERY)
    )
    assert (out.delivered_at is not None, out.failed_at is not None) == (delivered, failed)
    assert (status.source, status.status, status.version) == (
        "middleware",
        derived,
        f"{STAMP}:{derived}",
    )


def test_money_field_and_empty_list_oddities():
    item = delivery({"id": "5"}, ufCrm11Sum="2500|RUB", ufCrm11Note=[], assignedById="0")
    (out,) = normalize(
        item,
        {},
        ctx(
            **DELIVERY,
            delivery_item_fields={
                "collected_amount": "ufCrm11Sum",
                "courier_comment": "ufCrm11Note",
            },
        ),
    )
    assert (out.collected_amount, out.collected_currency) == (Decimal("2500"), "RUB")
    assert out.courier_comment == ""
    assert out.courier_id is None  # user 0: nobody
    # No stage: the courier's status says nothing, so no status version follows.


def test_real_added_item_as_a_courier_return(bitrix24_item_added):
    (out,) = normalize(bitrix24_item_added, {}, ctx(**DELIVERY))
    assert isinstance(out, Return)
    assert out.id == derived_id("return", "bitrix24", "item:133:247")
    assert out.external_ids == {"bitrix24": "item:133:247"}
    assert out.title == "Андрей Макарцев"  # the portal's trailing newline is not content
    assert out.reported_at == datetime.fromisoformat("2024-05-21T15:14:26+03:00")
    assert out.courier_id is None  # the answer names createdBy, not an assignee
    assert (out.lines, out.number, out.status) == ((), "", "new")


def test_return_item_fields_company_amount_and_shipment():
    item = {
        "id": 8,
        "entityTypeId": 133,
        "updatedTime": STAMP,
        "companyId": 0,
        "contactId": "12",
        "opportunity": 990.5,
        "currencyId": "RUB",
        "ufCrm133Ship": str(SHIPMENT),
    }
    (out,) = normalize(
        item, {}, ctx(**DELIVERY, return_item_fields={"shipment_id": "ufCrm133Ship"})
    )
    assert out.courier_counterparty_id == derived_id("counterparty", "bitrix24", "contact:12")
    assert (out.courier_amount, out.courier_currency) == (Decimal("990.5"), "RUB")
    assert out.courier_shipment_id == SHIPMENT


def test_return_item_with_our_id_keeps_it():
    item = {"id": 8, "entityTypeId": 133, "updatedTime": STAMP, "xmlId": str(OURS)}
    (out,) = normalize(item, {}, ctx(**DELIVERY))
    assert out.id == OURS


def test_entity_type_from_the_event_when_the_record_lacks_it():
    item = {"id": 8, "updatedTime": STAMP, "_event": {"entity_type_id": "133"}}
    (out,) = normalize(item, {}, ctx(**DELIVERY))
    assert isinstance(out, Return)


@pytest.mark.parametrize("value", [None, {"_deleted": True, "_key": "item:133:8"}])
def test_deleted_item_gives_nothing(value):
    assert normalize(value, {}, ctx(**DELIVERY)) == []


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"id": 8, "updatedTime": STAMP}, "entityTypeId"),
        ({"id": 8, "entityTypeId": 133}, "updatedTime"),
        (
            {"id": 8, "entityTypeId": 133, "updatedTime": STAMP, "ufCrm133Ship": "не GUID"},
            "ufCrm133Ship",
        ),
        (
            {"id": 8, "entityTypeId": 133, "updatedTime": STAMP, "opportunity": "много"},
            "opportunity",
        ),
        ({"id": None, "entityTypeId": 133, "updatedTime": STAMP}, "id"),
    ],
)
def test_rejections_name_the_field(item, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize(item, {}, ctx(**DELIVERY, return_item_fields={"shipment_id": "ufCrm133Ship"}))
