"""DeliveryTask: three owners, one task; versions round-trip through the committed schema."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.models.delivery_task import DeliveryTask
from stages.normalize.bitrix24_task import normalize as from_task
from stages.normalize.derive_delivery_task import delivery_task_from_order
from stages.normalize.registry import Context
from stages.sink.entity_store import Incoming, merge

MSK = ZoneInfo("Europe/Moscow")
ORDER = uuid.UUID("7c2a1e44-6330-11ec-ad72-000c29b45b09")


def test_entity_and_owner():
    assert (DeliveryTask.ENTITY, DeliveryTask.OWNER) == ("delivery_task", "middleware")


@pytest.mark.parametrize(
    ("field", "owner"),
    [
        ("status", "middleware"),
        ("order_id", "onec"),
        ("shipment_id", "onec"),
        ("delivery_address", "onec"),
        ("amount_to_collect", "onec"),
        ("planned_from", "onec"),
        ("deleted", "onec"),
        ("courier_id", "bitrix24"),
        ("courier_status", "bitrix24"),
        ("delivered_at", "bitrix24"),
        ("collected_amount", "bitrix24"),
        ("courier_comment", "bitrix24"),
    ],
)
def test_each_system_owns_its_fields(field, owner):
    assert DeliveryTask.owner_of(field) == owner
    assert [
        s for s in ("onec", "commerceml", "bitrix24", "middleware") if DeliveryTask.owns(s, field)
    ] == (["onec", "commerceml"] if owner == "onec" else [owner])


def test_every_content_field_is_described_and_owned_by_a_known_system():
    for name in DeliveryTask.content_fields():
        assert DeliveryTask.model_fields[name].description, name
        assert DeliveryTask.owner_of(name) in ("onec", "bitrix24", "middleware")


def test_references_name_their_entities():
    refs = {
        n: (f.json_schema_extra or {}).get("ref")
        for n, f in DeliveryTask.model_fields.items()
        if isinstance(f.json_schema_extra, dict) and "ref" in f.json_schema_extra
    }
    assert refs == {
        "order_id": "customer_order",
        "shipment_id": "shipment",
        "counterparty_id": "counterparty",
        "warehouse_id": "warehouse",
        "courier_id": "employee",
    }


def test_1c_and_courier_versions_round_trip(avro_round_trip):
    onec = delivery_task_from_order(
        order_id=ORDER,
        version="AAAAAQ==",
        number="ЗК-1",
        amount_to_collect=Decimal("4590.10"),
        planned_from=datetime(2024, 6, 3, 10, tzinfo=MSK),
    )
    back = avro_round_trip(onec)
    assert back["amount_to_collect"] == Decimal("4590.10") and back["number"] == "ЗК-1"
    assert back["planned_from"] == datetime(2024, 6, 3, 10, tzinfo=MSK)
    courier, status = from_task(
        {
            "id": "42",
            "status": "5",
            "xmlId": str(onec.id),
            "changedDate": "2024-06-03T12:00:00+03:00",
            "closedDate": "2024-06-03T11:58:00+03:00",
        },
        {},
        Context(),
    )
    back = avro_round_trip(courier)
    assert back["id"] == onec.id and back["external_ids"] == {"bitrix24": "task:42"}
    assert back["delivered_at"] == datetime.fromisoformat("2024-06-03T11:58:00+03:00")
    back = avro_round_trip(status)
    assert (back["id"], back["source"], back["status"]) == (onec.id, "middleware", "delivered")
    assert back["source_stamp"] == datetime.fromisoformat("2024-06-03T12:00:00+03:00")


def test_three_owners_merge_without_overwriting_each_other(db_url):
    """On real PostgreSQL through the generic sink: 1С's order data, the courier's report,
    the status the middleware derives from it and a later 1С change each keep to their own
    fields."""
    first = delivery_task_from_order(order_id=ORDER, version="v1", delivery_address="ул. Мира, 1")
    courier, status = from_task(
        {
            "id": "42",
            "status": "5",
            "xmlId": str(first.id),
            "changedDate": "2024-06-03T12:00:00+03:00",
            "closedDate": "2024-06-03T11:58:00+03:00",
        },
        {},
        Context(),
    )
    # A Bitrix24 version that also carries a 1С field (as a careless mapping would).
    courier = courier.model_copy(update={"delivery_address": "адрес от курьера"})
    later = delivery_task_from_order(order_id=ORDER, version="v2", delivery_address="ул. Мира, 2")

    def row():
        with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as conn:
            return conn.execute(
                "SELECT delivery_address, courier_status, delivered_at, status, "
                'external_ids FROM "delivery_task"'
            ).fetchall()

    async def apply(offset, version):
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                await merge(conn, DeliveryTask, [Incoming(version, "t", 0, offset)])
        finally:
            await engine.dispose()

    asyncio.run(apply(0, first))
    asyncio.run(apply(1, courier))
    delivered = datetime.fromisoformat("2024-06-03T11:58:00+03:00")
    both = {"onec": str(ORDER), "bitrix24": "task:42"}
    assert row() == [("ул. Мира, 1", "5", delivered, "new", both)]
    asyncio.run(apply(2, status))
    assert row() == [("ул. Мира, 1", "5", delivered, "delivered", both)]
    asyncio.run(apply(3, later))
    assert row() == [("ул. Мира, 2", "5", delivered, "delivered", both)]
