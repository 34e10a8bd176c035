"""Delivery tasks whose Bitrix24 side is gone or reissued (issue 14, item 2): the task action
against the emulator (ASGI) with the crosswalk on real PostgreSQL.

A reset (or replaced) portal starts empty and reissues task ids from 1 while the crosswalk
still names the old ones: a recreated task must take over an id another delivery's stale
link holds (no "… is linked to … already"), must never write over a task that is not ours,
and must not be created twice when an attempt is repeated."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from devstack.emulators.bitrix24 import create_app
from mmstream.settings import Bitrix24Settings, CourierObjectSettings, Settings
from stages.egress.actions import Targets
from stages.egress.deliveries import DeliveryTaskAction, camel_field
from stages.egress.delivery import Crosswalk
from tests.stages.egress.test_deliveries import BASE, HOOK, act, calls, change, delivery

OTHER = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"


@pytest.mark.parametrize(
    "name,expected",
    [("XML_ID", "xmlId"), ("xmlId", "xmlId"), ("UF_AUTO_123", "ufAuto123"), ("ID", "id")],
)
def test_camel_field_gives_the_name_tasks_task_get_answers(name, expected):
    assert camel_field(name) == expected


async def task_state(admin) -> dict[str, dict]:
    """The portal's tasks by id."""
    return {t["id"]: t for t in (await admin.get("/_emulator/entities/task")).json()}


def test_after_a_portal_reset_a_reissued_id_is_taken_over_and_no_task_is_overwritten(db_url):
    async def scenario(action, xwalk, admin):
        ours = await action.apply(change(delivery()), xwalk)  # task:1
        theirs = await action.apply(change(delivery(id=OTHER)), xwalk)  # task:2
        (await admin.post("/_emulator/reset")).raise_for_status()
        # The other delivery changes first: task 2 is gone, recreated as task 1 (our id).
        theirs_again = await action.apply(change(delivery(id=OTHER, number="ЗК-2")), xwalk)
        # Ours changes: task 1 holds the other delivery now — recreate, do not overwrite.
        ours_again = await action.apply(change(delivery(number="ЗК-1")), xwalk)
        return (
            ours,
            theirs,
            theirs_again,
            ours_again,
            await task_state(admin),
            await xwalk.external_id("delivery_task", "bitrix24", OTHER),
            await xwalk.external_id("delivery_task", "bitrix24", delivery()["id"]),
            await calls(admin, "tasks.task.update"),
        )

    ours, theirs, theirs_again, ours_again, tasks, other_link, our_link, updates = act(
        db_url, scenario
    )
    assert (ours, theirs, theirs_again, ours_again) == ("task:1", "task:2", "task:1", "task:2")
    assert (other_link, our_link) == ("task:1", "task:2")
    assert tasks["1"]["xmlId"] == OTHER and tasks["1"]["title"].startswith("Доставка ЗК-2")
    assert tasks["2"]["xmlId"] == delivery()["id"] and tasks["2"]["title"].startswith(
        "Доставка ЗК-1"
    )
    assert updates == []  # both were created; nothing was written over


def test_a_strangers_task_at_our_id_is_left_alone_and_ours_is_created(db_url):
    async def scenario(action, xwalk, admin):
        await action.apply(change(delivery()), xwalk)  # task:1
        (await admin.post("/_emulator/reset")).raise_for_status()
        # A user's own task takes id 1 (no key of ours).
        (
            await admin.put(
                "/_emulator/entities/task/1",
                json={"TITLE": "Позвонить поставщику", "RESPONSIBLE_ID": 1},
            )
        ).raise_for_status()
        again = await action.apply(change(delivery(number="ЗК-9")), xwalk)
        return again, await task_state(admin), await calls(admin, "tasks.task.update")

    again, tasks, updates = act(db_url, scenario)
    assert again == "task:2"
    assert tasks["1"]["title"] == "Позвонить поставщику"
    assert tasks["2"]["xmlId"] == delivery()["id"]
    assert updates == []


def test_a_repeated_attempt_after_a_lost_answer_finds_the_recreated_task(db_url):
    async def scenario(action, xwalk, admin):
        await action.apply(change(delivery()), xwalk)  # task:1
        (await admin.delete("/_emulator/entities/task/1")).raise_for_status()
        # An earlier attempt recreated the task, but its answer was lost: the crosswalk
        # still names the gone task 1 while task 2 carries our key.
        (
            await admin.put(
                "/_emulator/entities/task/2",
                json={"TITLE": "Доставка", "RESPONSIBLE_ID": 1, "XML_ID": delivery()["id"]},
            )
        ).raise_for_status()
        retried = await action.apply(change(delivery(number="ЗК-5")), xwalk)
        return (
            retried,
            await task_state(admin),
            await calls(admin, "tasks.task.add"),
            await xwalk.external_id("delivery_task", "bitrix24", delivery()["id"]),
        )

    retried, tasks, adds, linked = act(db_url, scenario)
    assert retried == linked == "task:2"
    assert len(adds) == 1  # the first create only: the retry found the task by XML_ID
    assert sorted(tasks) == ["2"] and tasks["2"]["title"].startswith("Доставка ЗК-5")


def test_a_deleted_order_whose_task_is_gone_defers_nothing_and_fails_nothing(db_url):
    async def scenario(action, xwalk, admin):
        await action.apply(change(delivery()), xwalk)
        (await admin.delete("/_emulator/entities/task/1")).raise_for_status()
        gone = await action.apply(change(delivery(), kind="delete"), xwalk)
        return gone, await calls(admin, "tasks.task.update")

    gone, updates = act(db_url, scenario)
    assert gone is None and updates == []


# -- deliveries kept as smart-process items (couriers.delivery_entity_type_id) -------------

TYPE_ID = 140


def act_items(db_url, scenario):
    """``act`` with the portal keeping deliveries as items of smart process ``TYPE_ID``."""
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        portal = Bitrix24Settings(
            webhook_url=BASE + HOOK,
            rate_per_s=1e6,
            burst=1000,
            couriers=CourierObjectSettings(delivery_entity_type_id=TYPE_ID),
        )
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


def test_items_after_a_portal_reset_take_over_reissued_ids_without_overwriting(db_url):
    async def scenario(action, xwalk, admin):
        ours = await action.apply(change(delivery()), xwalk)
        theirs = await action.apply(change(delivery(id=OTHER)), xwalk)
        (await admin.post("/_emulator/reset")).raise_for_status()
        theirs_again = await action.apply(change(delivery(id=OTHER, number="ЗК-2")), xwalk)
        ours_again = await action.apply(change(delivery(number="ЗК-1")), xwalk)
        items = (await admin.get(f"/_emulator/entities/item:{TYPE_ID}")).json()
        return (
            ours,
            theirs,
            theirs_again,
            ours_again,
            items,
            await calls(admin, "crm.item.update"),
        )

    ours, theirs, theirs_again, ours_again, items, updates = act_items(db_url, scenario)
    assert (ours, theirs) == (f"item:{TYPE_ID}:1", f"item:{TYPE_ID}:2")
    assert (theirs_again, ours_again) == (f"item:{TYPE_ID}:1", f"item:{TYPE_ID}:2")
    by_id = {int(i["id"]): i for i in items}
    assert by_id[1]["xmlId"] == OTHER and by_id[1]["title"].startswith("Доставка ЗК-2")
    assert by_id[2]["xmlId"] == delivery()["id"] and by_id[2]["title"].startswith("Доставка ЗК-1")
    assert updates == []
