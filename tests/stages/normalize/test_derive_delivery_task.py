"""The delivery task a 1С order or shipment asks for, and the delivery status the
middleware derives from what the courier's object shows (pure derivation)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.delivery_task import DeliveryTask
from stages.normalize.derive_delivery_task import (
    delivery_status,
    delivery_task_from_order,
    delivery_task_from_shipment,
    delivery_task_id,
    needs_delivery,
    status_version,
)
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import normalizers

MSK = ZoneInfo("Europe/Moscow")
ORDER = uuid.UUID("7c2a1e44-6330-11ec-ad72-000c29b45b09")
SALE = uuid.UUID("8b9660f6-6332-11ec-ad72-000c29b45b09")


def order(**fields):
    return delivery_task_from_order(
        **{
            "order_id": ORDER,
            "version": "AAAAAQAAAAA=",
            "number": " ЗК-000123 ",
            "delivery_address": "г. Москва, ул. Тверская, д. 1",
            "amount_to_collect": Decimal("4590.00"),
            "planned_from": datetime(2024, 6, 3, 10, tzinfo=MSK),
            "planned_to": datetime(2024, 6, 3, 14, tzinfo=MSK),
            **fields,
        }
    )


def test_not_a_normalizer_of_any_topic():
    assert all("derive" not in fn.__module__ for fn in normalizers().values())


def test_task_of_an_order_is_1c_data_with_the_status_default():
    task = order()
    assert task.id == delivery_task_id(ORDER) == delivery_task_id(ORDER)  # stable, no lookup
    assert (task.source, task.version) == ("onec", "order:AAAAAQAAAAA=")
    assert task.number == "ЗК-000123" and task.order_id == ORDER and task.shipment_id is None
    assert task.status == "new"
    assert task.external_ids == {"onec": str(ORDER)}
    # Every field the version fills is 1С's (the sink would drop the rest anyway).
    filled = {f for f in task.content_fields() if getattr(task, f) not in (None, "", "new")}
    assert filled and all(task.owns("onec", f) for f in filled)


def test_shipment_of_an_order_updates_the_order_task():
    task = delivery_task_from_shipment(shipment_id=SALE, order_id=ORDER, version="AAAAAg==")
    assert task.id == delivery_task_id(ORDER)
    assert (task.order_id, task.shipment_id, task.version) == (ORDER, SALE, "shipment:AAAAAg==")


def test_shipment_without_an_order_has_its_own_task():
    task = delivery_task_from_shipment(shipment_id=SALE, version="AAAAAg==", deleted=True)
    assert task.id == delivery_task_id(None, SALE) != delivery_task_id(ORDER)
    assert task.deleted


def test_deleted_shipment_does_not_delete_its_order_delivery():
    task = delivery_task_from_shipment(shipment_id=SALE, order_id=ORDER, version="v", deleted=True)
    assert not task.deleted


def test_order_change_after_shipment_keeps_the_shipment_link():
    shipped = delivery_task_from_shipment(shipment_id=SALE, order_id=ORDER, version="v")
    assert order(version="AAAAAw==", current=shipped).shipment_id == SALE
    assert order(version="AAAAAw==").shipment_id is None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"version": ""}, "version"),
        ({"planned_from": datetime(2024, 6, 3, 10)}, "planned_from"),
        ({"planned_to": datetime(2024, 6, 3, 9, tzinfo=MSK)}, "planned_to"),
        ({"amount_to_collect": Decimal("-1")}, "amount_to_collect"),
    ],
)
def test_rejections_name_the_field(patch, field):
    with pytest.raises(Unnormalizable, match=field):
        order(**patch)


def test_no_document_no_task():
    with pytest.raises(Unnormalizable, match="order or a shipment"):
        delivery_task_id(None, None)


@pytest.mark.parametrize(
    ("address", "required", "needed"),
    [
        ("г. Москва, ул. Тверская, д. 1", True, True),
        ("", True, False),
        ("   ", True, False),  # blanks are no address: the customer collects the order
        ("", False, True),
        ("ул. Мира, 1", False, True),
    ],
)
def test_an_order_needs_delivery_when_it_names_an_address_or_none_is_required(
    address, required, needed
):
    assert needs_delivery(address, address_required=required) is needed


@pytest.mark.parametrize(
    ("courier_status", "status"),
    [
        ("2", "assigned"),
        ("3", "in_progress"),
        ("5", "delivered"),
        ("7", "failed"),
        (" 5 ", "delivered"),
        ("DT133_10:SUCCESS", "delivered"),
        ("DT133_10:FAIL", "failed"),
        ("DT133_10:NEW", "assigned"),
        ("DT133_10:PREPARATION", "assigned"),
        ("DT133_10:CLIENT", "in_progress"),  # any other stage of the funnel: on the way
    ],
)
def test_courier_status_codes_and_stages_give_the_delivery_status(courier_status, status):
    assert delivery_status(courier_status) == status


@pytest.mark.parametrize(
    ("delivered", "failed", "status"),
    [(True, False, "delivered"), (False, True, "failed"), (True, True, "failed")],
)
def test_explicit_outcome_wins_over_the_courier_status(delivered, failed, status):
    for courier_status in ("3", "DT133_10:NEW", "DT133_10:SUCCESS", ""):
        assert delivery_status(courier_status, delivered=delivered, failed=failed) == status


@pytest.mark.parametrize("courier_status", ["", "  ", "9", "Выполнена"])
def test_unknown_courier_status_says_nothing(courier_status):
    assert delivery_status(courier_status) is None


def courier(**fields) -> DeliveryTask:
    return DeliveryTask(
        **{
            "id": delivery_task_id(ORDER),
            "source": "bitrix24",
            "version": "2024-06-03T12:00:00+03:00",
            "source_stamp": datetime(2024, 6, 3, 12, tzinfo=MSK),
            "external_ids": {"bitrix24": "task:42"},
            **fields,
        }
    )


def test_no_status_version_when_the_courier_status_says_nothing():
    assert status_version(courier(courier_status="")) is None
    assert status_version(courier(courier_status="9")) is None


def test_status_version_is_the_middleware_s_at_the_courier_stamp():
    task = courier(
        courier_status="3",
        courier_comment="еду",
        collected_amount=Decimal("100"),
        collected_currency="RUB",
    )
    status = status_version(task)
    assert (status.id, status.source, status.status) == (task.id, "middleware", "in_progress")
    assert status.version == "2024-06-03T12:00:00+03:00:in_progress"
    assert status.source_stamp == task.source_stamp  # an older courier change never wins
    # Only the status is set: every other field stays at its default for its owner to keep.
    filled = {
        f
        for f in status.content_fields()
        if f != "status" and getattr(status, f) != DeliveryTask.model_fields[f].default
    }
    assert filled == set() and status.owns("middleware", "status")
    assert (status.external_ids, status.deleted) == ({}, False)


def test_status_version_follows_the_explicit_outcome_times():
    moment = datetime(2024, 6, 3, 11, 58, tzinfo=MSK)
    delivered = status_version(courier(courier_status="3", delivered_at=moment))
    failed = status_version(courier(courier_status="DT133_10:NEW", failed_at=moment))
    assert (delivered.status, delivered.version) == (
        "delivered",
        "2024-06-03T12:00:00+03:00:delivered",
    )
    assert (failed.status, failed.version) == ("failed", "2024-06-03T12:00:00+03:00:failed")
