"""Deliveries (flow 2): the pure mappings of a delivery task to Bitrix24 task / item fields and
to the DeliveryStatus 1С records; and the task action itself against the emulator (ASGI, no
socket) with the crosswalk on real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from devstack.emulators.bitrix24 import create_app
from devstack.emulators.onec.contract import DeliveryStatus
from mmstream.errors import PermanentError
from mmstream.settings import Bitrix24Settings, Settings
from stages.egress.actions import Targets
from stages.egress.deliveries import (
    DeliveryNotDescribed,
    DeliveryTaskAction,
    confirmation_body,
    item_fields,
    money_text,
    parse_record_key,
    task_description,
    task_fields,
    task_title,
    upper_field,
    window_text,
)
from stages.egress.delivery import Change, Crosswalk

MSK = ZoneInfo("Europe/Moscow")
TASK = "3f9d7c1e-5b2a-4e8f-9a61-0c2d4b6e8f10"
ORDER = "7c2a1e44-6330-11ec-ad72-000c29b45b09"
SHIPMENT = "8b9660f6-6332-11ec-ad72-000c29b45b09"


def delivery(**fields) -> dict:
    """A canonical delivery task as the egress worker reads it from norm.delivery_task."""
    return {
        "id": TASK,
        "source": "onec",
        "number": "ЗК-000123",
        "delivery_address": "Москва, ул. Тверская, 1",
        "amount_to_collect": "1500.5",
        "planned_from": "2024-06-03T10:00:00+03:00",
        "planned_to": "2024-06-03T14:00:00+03:00",
        "status": "delivered",
        "order_id": ORDER,
        **fields,
    }


# -- small mappings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,expected",
    [
        ("xmlId", "XML_ID"),
        ("title", "TITLE"),
        ("responsibleId", "RESPONSIBLE_ID"),
        ("ufCrmTask", "UF_CRM_TASK"),
        ("XML_ID", "XML_ID"),  # configured in UPPER_CASE already
    ],
)
def test_upper_field_turns_a_camel_case_get_name_into_the_add_name(name, expected):
    assert upper_field(name) == expected


@pytest.mark.parametrize(
    "amount,expected",
    [
        ("1500.5", "1500.50"),
        (1500, "1500.00"),
        (0, "0.00"),
        (None, ""),
        ("", ""),
        (0.1, "0.10"),
    ],
)
def test_money_text_shows_two_decimals_and_nothing_for_no_amount(amount, expected):
    assert money_text(amount) == expected


def test_window_text_joins_both_ends_and_falls_back_to_the_one_given():
    assert window_text("10:00", "14:00") == "10:00 — 14:00"
    assert window_text("10:00", None) == "10:00"
    assert window_text(None, "14:00") == "14:00"
    assert window_text(None, None) == ""


def test_task_title_names_the_document_and_the_address():
    assert task_title(delivery()) == "Доставка ЗК-000123: Москва, ул. Тверская, 1"


def test_task_title_without_number_or_address_still_reads():
    assert task_title({"number": "  ", "delivery_address": None}) == "Доставка без номера"


def test_task_description_has_one_line_per_known_value():
    assert task_description(delivery()).split("\n") == [
        "Адрес: Москва, ул. Тверская, 1",
        "Получить с клиента: 1500.50",
        "Окно доставки: 2024-06-03T10:00:00+03:00 — 2024-06-03T14:00:00+03:00",
        "Документ 1С: ЗК-000123",
    ]


def test_task_description_leaves_out_empty_lines():
    # A courier should not read "Адрес: " with nothing after it.
    assert task_description({"number": "ЗК-1"}) == "Документ 1С: ЗК-1"


# -- Bitrix24 fields ----------------------------------------------------------------------


def test_task_fields_key_the_task_by_canonical_id_in_xml_id():
    fields = task_fields(delivery(), "xmlId")
    assert fields["XML_ID"] == TASK
    assert fields["TITLE"].startswith("Доставка ЗК-000123")
    assert fields["DEADLINE"] == "2024-06-03T14:00:00+03:00"


def test_task_fields_set_the_responsible_only_when_given():
    # On update the responsible is left alone: the dispatcher may have assigned a courier.
    assert "RESPONSIBLE_ID" not in task_fields(delivery(), "xmlId")
    assert task_fields(delivery(), "xmlId", responsible_id=7)["RESPONSIBLE_ID"] == 7


def test_task_fields_deadline_falls_back_to_the_window_start_and_else_is_absent():
    assert (
        task_fields(delivery(planned_to=None), "xmlId")["DEADLINE"] == "2024-06-03T10:00:00+03:00"
    )
    assert "DEADLINE" not in task_fields(delivery(planned_to=None, planned_from=None), "xmlId")


def test_item_fields_are_camel_case_with_the_id_field_as_named():
    assert item_fields(delivery(), "xmlId") == {
        "title": "Доставка ЗК-000123: Москва, ул. Тверская, 1",
        "xmlId": TASK,
    }
    assert item_fields(delivery(), "ufCrm5Guid", assigned_by_id=3)["assignedById"] == 3
    assert "assignedById" not in item_fields(delivery(), "xmlId")


# -- the confirmation to 1С -------------------------------------------------------------


def test_a_delivered_task_confirms_with_the_money_collected():
    body = confirmation_body(
        delivery(
            delivered_at="2024-06-03T09:15:30+00:00",
            collected_amount="1500.50",
            collected_currency="usd",
            courier_comment="оставил у консьержа",
        ),
        MSK,
    )
    assert body == {
        "status": "delivered",
        "occurred_at": "2024-06-03T12:15:30",
        "order_id": ORDER,
        "comment": "оставил у консьержа",
        "collected_amount": 1500.5,
        "currency": "USD",
    }


@pytest.mark.parametrize("given", [None, "", "RU", "RUBL"])
def test_a_collected_amount_without_a_currency_code_goes_in_roubles(given):
    body = confirmation_body(
        delivery(
            delivered_at="2024-06-03T12:00:00+03:00", collected_amount=100, collected_currency=given
        ),
        MSK,
    )
    assert body["currency"] == "RUB" and body["collected_amount"] == 100.0


def test_a_failed_task_confirms_at_failed_at_and_carries_no_money():
    body = confirmation_body(
        delivery(
            status="failed",
            shipment_id=SHIPMENT,
            delivered_at="2024-06-03T08:00:00+00:00",
            failed_at="2024-06-03T11:00:00+00:00",
            collected_amount="10",
        ),
        MSK,
    )
    assert body["occurred_at"] == "2024-06-03T14:00:00"
    assert body["order_id"] == ORDER and body["shipment_id"] == SHIPMENT
    assert "collected_amount" not in body and "currency" not in body


def test_occurred_at_is_moscow_wall_clock_without_offset_or_microseconds():
    body = confirmation_body(delivery(delivered_at="2024-12-31T22:30:15.987+00:00"), MSK)
    assert body["occurred_at"] == "2025-01-01T01:30:15"


def test_without_a_reported_moment_the_confirmation_is_dated_now():
    now = datetime(2024, 6, 3, 7, 0, tzinfo=UTC)
    body = confirmation_body(delivery(status="cancelled"), MSK, now=now)
    assert body["occurred_at"] == "2024-06-03T10:00:00"


def test_the_courier_comment_is_cut_to_what_1c_takes():
    body = confirmation_body(
        delivery(courier_comment="х" * 2000), MSK, now=datetime(2024, 6, 3, tzinfo=UTC)
    )
    assert len(body["comment"]) == 1024


def test_a_task_naming_no_document_cannot_be_confirmed_and_is_not_retried():
    with pytest.raises(DeliveryNotDescribed) as caught:
        confirmation_body(delivery(order_id=None, shipment_id=""), MSK)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.retriable is False
    assert TASK in str(caught.value)


def test_a_confirmation_body_passes_the_1c_contract():
    # What the emulator (and 1С's service) validates: strict, no extra fields.
    body = confirmation_body(
        delivery(
            delivered_at="2024-06-03T12:00:00+03:00",
            collected_amount="1500.5",
            collected_currency="RUB",
        ),
        MSK,
    )
    DeliveryStatus.model_validate(body)


def test_a_non_iso_collected_currency_falls_back_to_roubles():
    body = confirmation_body(
        delivery(
            delivered_at="2024-06-03T12:00:00+03:00", collected_amount=100, collected_currency="руб"
        ),
        MSK,
    )
    assert body["currency"] == "RUB"


# -- record keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,expected",
    [
        ("task:42", ("task", None, 42)),
        ("item:140:42", ("item", 140, 42)),
    ],
)
def test_parse_record_key_reads_task_and_item_keys(key, expected):
    assert parse_record_key(key) == expected


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "task",
        "task:",
        "task:x",
        "task:1:2",
        "item:140",
        "item:a:42",
        "deal:42",
        "item:140:42:1",
        "task:-1",
    ],
)
def test_parse_record_key_refuses_anything_else(key):
    assert parse_record_key(key) is None


# -- the task action (emulator + crosswalk on PostgreSQL) ---------------------------------

HOOK = "/rest/1/deliverytest/"
BASE = "http://portal.test"


def act(db_url, scenario):
    """Run ``scenario(action, xwalk, admin)`` against a fresh emulator and database."""
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        portal = Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000)
        client = Bitrix24Client(portal, transport=httpx.ASGITransport(app=app))
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        engine = create_async_engine(db_url)
        targets = Targets(
            settings=Settings(bitrix24=portal), bitrix24=client, onec=None, producer=None
        )
        try:
            return await scenario(DeliveryTaskAction(targets), Crosswalk(engine), admin)
        finally:
            await client.aclose()
            await admin.aclose()
            await engine.dispose()

    return asyncio.run(main())


def change(payload: dict, kind: str = "upsert"):
    return Change(
        entity="delivery_task",
        entity_id=payload["id"],
        payload=payload,
        change=kind,
        outbox_id=1,
        event_id="e1",
    )


async def calls(admin, method: str) -> list[dict]:
    return (await admin.get("/_emulator/calls", params={"method": method})).json()


def test_a_delivery_task_is_created_once_and_updated_after(db_url):
    async def scenario(action, xwalk, admin):
        first = await action.apply(change(delivery()), xwalk)
        second = await action.apply(change(delivery(delivery_address="ул. Арбат, 2")), xwalk)
        return (
            first,
            second,
            await calls(admin, "tasks.task.add"),
            await calls(admin, "tasks.task.update"),
            await xwalk.external_id("delivery_task", "bitrix24", TASK),
        )

    first, second, adds, updates, linked = act(db_url, scenario)
    assert first == second == linked and first.startswith("task:")
    assert len(adds) == 1 and len(updates) == 1


def test_a_courier_change_is_not_echoed_back_when_the_task_holds_1c_data(db_url):
    async def scenario(action, xwalk, admin):
        await action.apply(change(delivery()), xwalk)
        courier = await action.apply(change(delivery(source="bitrix24")), xwalk)
        return courier, await calls(admin, "tasks.task.update")

    courier, updates = act(db_url, scenario)
    assert courier is None and updates == []


def test_a_courier_change_brings_over_1c_data_whose_own_change_was_dead_lettered(db_url):
    """1С's address change was dead-lettered in a target storm; the courier's later change
    (its row holds the new address) was released past it, and a replay of 1С's change is
    skipped as superseded: the courier's change writes the 1С fields, once."""

    async def scenario(action, xwalk, admin):
        first = await action.apply(change(delivery()), xwalk)
        moved = delivery(source="bitrix24", delivery_address="ул. Арбат, 2")
        caught_up = await action.apply(change(moved), xwalk)
        echo = await action.apply(change(moved), xwalk)
        number = first.split(":")[1]
        tasks = (await admin.get("/_emulator/entities/task")).json()
        task = next(t for t in tasks if str(t["id"]) == number)
        return first, caught_up, echo, await calls(admin, "tasks.task.update"), task

    first, caught_up, echo, updates, task = act(db_url, scenario)
    assert caught_up == first and echo is None
    assert len(updates) == 1
    assert task["title"] == "Доставка ЗК-000123: ул. Арбат, 2"


def test_a_courier_change_of_a_task_1c_never_stated_writes_nothing(db_url):
    async def scenario(action, xwalk, admin):
        await action.apply(change(delivery()), xwalk)
        bare = delivery(source="bitrix24", order_id=None, delivery_address="", number="")
        return await action.apply(change(bare), xwalk), await calls(admin, "tasks.task.update")

    written, updates = act(db_url, scenario)
    assert written is None and updates == []


def test_a_lost_link_finds_the_task_by_xml_id_instead_of_adding_another(db_url):
    async def scenario(action, xwalk, admin):
        first = await action.apply(change(delivery()), xwalk)
        # The crosswalk forgets it (a timeout after the add): the next try must look it up.
        async with xwalk.engine.begin() as conn:
            await conn.execute(sql("DELETE FROM crosswalk"))
        again = await action.apply(change(delivery()), xwalk)
        return first, again, await calls(admin, "tasks.task.add")

    first, again, adds = act(db_url, scenario)
    assert first == again and len(adds) == 1


def test_a_task_a_user_deleted_is_created_again_and_the_crosswalk_follows(db_url):
    async def scenario(action, xwalk, admin):
        first = await action.apply(change(delivery()), xwalk)
        number = first.split(":")[1]
        (await admin.delete(f"/_emulator/entities/task/{number}")).raise_for_status()
        again = await action.apply(change(delivery(delivery_address="ул. Арбат, 2")), xwalk)
        return (
            first,
            again,
            await xwalk.external_id("delivery_task", "bitrix24", TASK),
            await calls(admin, "tasks.task.add"),
        )

    first, again, linked, adds = act(db_url, scenario)
    assert again != first and linked == again
    assert len(adds) == 2
