"""raw.bitrix24.task -> DeliveryTask (courier fields only), on the real tasks.task answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.base import derived_id
from mmstream.settings import CourierObjectSettings
from stages.normalize.bitrix24_task import normalize
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

OURS = uuid.UUID("3f9a1c52-7e0b-4d4e-9a51-2b1c0f6a7e11")
MSK = ZoneInfo("Europe/Moscow")


def ctx(**couriers) -> Context:
    return Context(portal_tz=MSK, couriers=CourierObjectSettings(**couriers))


def ours(task: dict, **extra) -> dict:
    return {**task, "xmlId": str(OURS), "changedDate": "2024-05-21T15:14:27+03:00", **extra}


def test_the_topic_is_claimed_here():
    assert normalizers()["raw.bitrix24.task"] is normalize


def test_real_tasks_not_created_by_us_are_not_delivery_tasks(bitrix24_tasks):
    assert len(bitrix24_tasks) > 50
    assert [normalize(t, {}, ctx()) for t in bitrix24_tasks] == [[]] * len(bitrix24_tasks)


def test_real_task_carrying_our_id_gives_the_courier_fields(bitrix24_tasks):
    task = bitrix24_tasks[4]  # status "3": in progress; "group": [] stays ignored
    out, status = normalize(ours(task, responsibleId="17"), {}, ctx())
    assert out.id == OURS
    assert (out.source, out.version) == ("bitrix24", "2024-05-21T15:14:27+03:00")
    assert out.source_stamp == datetime(2024, 5, 21, 15, 14, 27, tzinfo=MSK)
    assert out.external_ids == {"bitrix24": f"task:{task['id']}"}
    assert out.courier_status == "3"
    assert out.courier_id == derived_id("employee", "bitrix24", "user:17")
    assert out.delivered_at is None
    # The 1С and middleware fields stay at defaults: the sink keeps what their owners wrote.
    assert (out.order_id, out.delivery_address, out.status) == (None, "", "new")
    # The status the middleware derives follows as its own version, at the same stamp.
    assert (status.id, status.source, status.status) == (OURS, "middleware", "in_progress")
    assert status.version == "2024-05-21T15:14:27+03:00:in_progress"
    assert status.source_stamp == out.source_stamp


def test_completed_task_is_delivered_at_its_close_time(bitrix24_tasks):
    out, status = normalize(
        ours(bitrix24_tasks[0], status="5", closedDate="2024-05-21T18:00:00+05:00"), {}, ctx()
    )
    assert out.delivered_at == datetime.fromisoformat("2024-05-21T18:00:00+05:00")
    assert (status.source, status.status) == ("middleware", "delivered")


def test_mapped_uf_fields_give_comment_money_and_failure():
    task = ours(
        {"id": "9", "status": "6"},
        ufMmComment="  Клиент не открыл дверь ",
        ufMmCollected="1500.50|RUB",
        ufMmFailed="2024-05-21T19:00:00",
    )
    out, status = normalize(
        task,
        {},
        ctx(
            task_fields={
                "courier_comment": "ufMmComment",
                "collected_amount": "ufMmCollected",
                "failed_at": "ufMmFailed",
            }
        ),
    )
    assert out.courier_comment == "Клиент не открыл дверь"
    assert (out.collected_amount, out.collected_currency) == (Decimal("1500.50"), "RUB")
    # No offset: the portal's wall clock.
    assert out.failed_at == datetime(2024, 5, 21, 19, 0, tzinfo=MSK)
    # The explicit failure wins over the status code ("6": deferred).
    assert (status.status, status.version) == ("failed", f"{out.version}:failed")


def test_configured_id_field_is_where_our_id_is_read():
    task = {
        "id": "9",
        "status": "2",
        "changedDate": "2024-05-21T15:14:27+03:00",
        "ufMmId": str(OURS),
        "xmlId": "1C-sync-77",
    }
    assert normalize(task, {}, ctx()) == []  # xmlId holds another integration's code
    out, status = normalize(task, {}, ctx(task_id_field="ufMmId"))
    assert out.id == status.id == OURS
    assert status.status == "assigned"  # "2": pending


def test_a_status_that_says_nothing_gives_no_status_version():
    (out,) = normalize(ours({"id": "9", "status": ""}), {}, ctx())
    assert out.source == "bitrix24"


@pytest.mark.parametrize("value", [None, {"_deleted": True, "_key": "task:42"}])
def test_deleted_task_gives_nothing(value):
    assert normalize(value, {}, ctx()) == []


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"changedDate": ""}, "changedDate"),
        ({"changedDate": "вчера"}, "changedDate"),
        ({"id": "0"}, "id"),
        ({"id": "abc"}, "id"),
        ({"responsibleId": "x"}, "responsibleId"),
        ({"status": "2\x00"}, "NUL"),
    ],
)
def test_rejections_name_the_field(patch, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize(ours({"id": "9", "status": "2"}, **patch), {}, ctx())


def test_not_an_object_is_refused():
    with pytest.raises(Unnormalizable, match="JSON object"):
        normalize(["task"], {}, ctx())  # type: ignore[arg-type]
