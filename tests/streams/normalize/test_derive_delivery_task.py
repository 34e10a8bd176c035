"""The delivery task a 1С order or shipment asks for (pure derivation)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from streams.normalize.derive_delivery_task import (
    delivery_task_from_order,
    delivery_task_from_shipment,
    delivery_task_id,
)
from streams.normalize.oddities import Unnormalizable
from streams.normalize.registry import normalizers

MSK = ZoneInfo("Europe/Moscow")
ORDER = uuid.UUID("7c2a1e44-6330-11ec-ad72-000c29b45b09")
SALE = uuid.UUID("8b9660f6-6332-11ec-ad72-000c29b45b09")


def order(**fields):
    return delivery_task_from_order(**{
        "order_id": ORDER, "version": "AAAAAQAAAAA=", "number": " ЗК-000123 ",
        "delivery_address": "г. Москва, ул. Тверская, д. 1",
        "amount_to_collect": Decimal("4590.00"),
        "planned_from": datetime(2024, 6, 3, 10, tzinfo=MSK),
        "planned_to": datetime(2024, 6, 3, 14, tzinfo=MSK), **fields})


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
    task = delivery_task_from_shipment(shipment_id=SALE, order_id=ORDER, version="v",
                                       deleted=True)
    assert not task.deleted


def test_order_change_after_shipment_keeps_the_shipment_link():
    shipped = delivery_task_from_shipment(shipment_id=SALE, order_id=ORDER, version="v")
    assert order(version="AAAAAw==", current=shipped).shipment_id == SALE
    assert order(version="AAAAAw==").shipment_id is None


@pytest.mark.parametrize(("patch", "field"), [
    ({"version": ""}, "version"),
    ({"planned_from": datetime(2024, 6, 3, 10)}, "planned_from"),
    ({"planned_to": datetime(2024, 6, 3, 9, tzinfo=MSK)}, "planned_to"),
    ({"amount_to_collect": Decimal("-1")}, "amount_to_collect"),
])
def test_rejections_name_the_field(patch, field):
    with pytest.raises(Unnormalizable, match=field):
        order(**patch)


def test_no_document_no_task():
    with pytest.raises(Unnormalizable, match="order or a shipment"):
        delivery_task_id(None, None)
