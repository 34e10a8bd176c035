"""The emulator's CRM entities, smart-process items and tasks: shapes as the real portal
answers (compared with the captured fixtures), list filters/paging used by the cursor
poller, batch gets, admin seeding and the change log."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from connectors.bitrix24.errors import InvalidRequest
from devstack.emulators.bitrix24 import create_app
from tests.connectors.bitrix24.conftest import run_in_process

HOOK = "/rest/1/entitytest/"
BASE = "http://portal.test"
FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "bitrix24_rest"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text("utf-8"))


@pytest.fixture
def app():
    return create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)


def run(app, scenario):
    return run_in_process(app, HOOK, scenario, BASE)


async def put(admin, entity, ident, fields):
    resp = await admin.put(f"/_emulator/entities/{entity}/{ident}", json=fields)
    resp.raise_for_status()
    return resp.json()


def test_crm_deal_shape_matches_the_legacy_crm_family(app):
    async def scenario(client, admin):
        await put(admin, "deal", 42, {"TITLE": "Доставка", "OPPORTUNITY": 1500.5, "CLOSED": False})
        return await client.call("crm.deal.get", {"id": "42"})

    deal = run(app, scenario)
    assert deal["ID"] == "42" and deal["TITLE"] == "Доставка"
    assert deal["OPPORTUNITY"] == "1500.5" and deal["CLOSED"] == "N" and deal["OPENED"] == "Y"
    # Like the fixture: every key UPPER_CASE, ids strings, dates with the portal's offset.
    real = fixture("crm_lead_list_one_page_success.json")["result"][0]
    assert all(k.isupper() for k in real) and all(k.replace("_", "").isupper() for k in deal)
    assert isinstance(deal["ID"], str) and isinstance(real["ID"], str)
    assert datetime.fromisoformat(deal["DATE_MODIFY"]).utcoffset() is not None


def test_crm_get_errors_are_legacy(app):
    async def scenario(client, admin):
        errors = []
        for params in ({"id": 999}, {"id": "abc"}):
            try:
                await client.call("crm.lead.get", params)
            except InvalidRequest as exc:
                errors.append((exc.status, exc.error, exc.description))
        return errors

    assert run(app, scenario) == [
        (400, "", "Not found"),
        (400, "", "ID is not defined or invalid."),
    ]


def test_crm_list_by_date_modify_cursor_and_paging(app):
    async def scenario(client, admin):
        for i in range(1, 121):
            minute = "10:00:00" if i <= 60 else "10:00:05"
            await put(
                admin, "contact", i, {"NAME": f"N{i}", "DATE_MODIFY": f"2026-03-01T{minute}+03:00"}
            )
        older = await client.call(
            "crm.contact.list",
            {
                "filter": {">DATE_MODIFY": "2026-03-01T07:00:01+00:00"},  # the same instant, in UTC
                "order": {"DATE_MODIFY": "ASC", "ID": "ASC"},
                "select": ["ID", "DATE_MODIFY"],
                "start": -1,
            },
        )
        same_second = await client.call(
            "crm.contact.list",
            {
                "filter": {"DATE_MODIFY": "2026-03-01T07:00:00Z", ">ID": 50},
                "order": {"ID": "ASC"},
                "select": ["ID", "DATE_MODIFY"],
                "start": -1,
            },
        )
        return older, same_second

    newer, same = run(app, scenario)
    assert [r["ID"] for r in newer] == [str(i) for i in range(61, 111)]  # one page of 50
    assert set(newer[0]) == {"ID", "DATE_MODIFY"}
    assert [r["ID"] for r in same] == [str(i) for i in range(51, 61)]


def test_crm_list_reports_total_and_next(app):
    async def scenario(client, admin):
        for i in range(1, 56):
            await put(admin, "company", i, {"TITLE": f"C{i}"})
        resp = await admin.post(f"{HOOK}crm.company.list.json", json={"order": {"ID": "DESC"}})
        return resp.json()

    body = run(app, scenario)
    assert body["total"] == 55 and body["next"] == 50 and body["result"][0]["ID"] == "55"


def test_item_shape_and_not_found(app):
    async def scenario(client, admin):
        await put(admin, "item:1220", 24, {"title": "Заявка", "ufCrm11_1712074666": "x"})
        item = await client.call("crm.item.get", {"entityTypeId": 1220, "id": 24})
        listed = await client.call(
            "crm.item.list", {"entityTypeId": 1220, "select": ["id", "updatedTime"]}
        )
        try:
            await client.call("crm.item.get", {"entityTypeId": 1220, "id": 25})
        except InvalidRequest as exc:
            return item, listed, (exc.status, exc.error)

    item, listed, missing = run(app, scenario)
    assert item["item"]["id"] == 24 and item["item"]["entityTypeId"] == 1220
    assert item["item"]["title"] == "Заявка" and item["item"]["updatedTime"]
    real = fixture("crm_item_add.json")["result"]["result"]["order0000000000"]["item"]
    assert set(real) <= set(item["item"])  # every field the real portal sends
    assert listed == {"items": [{"id": 24, "updatedTime": item["item"]["updatedTime"]}]}
    assert missing == (400, "NOT_FOUND")


def test_task_shape_upper_in_camel_out_and_missing_is_empty(app):
    async def scenario(client, admin):
        await put(admin, "task", 8618, {"TITLE": "Забрать возврат", "RESPONSIBLE_ID": 7})
        await put(admin, "task", 8619, {"title": "Второй"})
        got = await client.call("tasks.task.get", {"taskId": 8618})
        listed = await client.call(
            "tasks.task.list",
            {
                "filter": {">ID": 8618},
                "order": {"CHANGED_DATE": "asc"},
                "select": ["ID", "CHANGED_DATE"],
            },
        )
        missing = await client.call("tasks.task.get", {"taskId": 1})
        return got, listed, missing

    got, listed, missing = run(app, scenario)
    task = got["task"]
    assert (
        task["id"] == "8618" and task["title"] == "Забрать возврат" and task["responsibleId"] == "7"
    )
    real = fixture("get_all_tasks.json")[0]["result"]["tasks"][0]
    assert set(real) <= set(task) and task["group"] == [] == real["group"]
    assert listed == {"tasks": [{"id": "8619", "changedDate": listed["tasks"][0]["changedDate"]}]}
    assert missing == []


def test_batch_of_gets_maps_named_keys_and_lists_numeric_ones(app):
    async def scenario(client, admin):
        await put(admin, "deal", 1, {"TITLE": "one"})
        named = await client.call(
            "batch",
            {
                "halt": 0,
                "cmd": {
                    "deal_1": "crm.deal.get?id=1",
                    "deal_2": "crm.deal.get?id=2",
                    "task_5": "tasks.task.get?taskId=5",
                },
            },
        )
        numbered = await client.call(
            "batch", {"halt": 0, "cmd": ["crm.deal.get?id=", "crm.deal.get?id=2"]}
        )
        return named, numbered

    named, numbered = run(app, scenario)
    assert named["result"]["deal_1"]["TITLE"] == "one" and named["result"]["task_5"] == []
    assert named["result_error"] == {"deal_2": {"error": "", "error_description": "Not found"}}
    # Keys 0..n-1 come back as a JSON list: the shape of the captured real response.
    real = fixture("crm_get_batch_of_two_error.json")["result"]
    assert numbered["result"] == real["result"] == []
    assert numbered["result_error"] == real["result_error"]


def test_admin_delete_change_log_reset_and_unknown_entities(app):
    async def scenario(client, admin):
        await put(admin, "lead", 3, {"TITLE": "a", "DATE_MODIFY": "2026-01-01T10:00:00+03:00"})
        await put(admin, "product", 9, {"name": "Кабель"})
        product = await client.call("catalog.product.get", {"id": 9})
        gone = await admin.delete("/_emulator/entities/lead/3")
        again = await admin.delete("/_emulator/entities/lead/3")
        bad = await admin.put("/_emulator/entities/invoice/1", json={})
        changes = (await admin.get("/_emulator/changes")).json()
        await admin.post("/_emulator/reset")
        after = (await admin.get("/_emulator/changes")).json()
        try:
            await client.call("crm.lead.get", {"id": 3})
        except InvalidRequest as exc:
            return (
                product,
                gone.status_code,
                again.status_code,
                bad.status_code,
                changes,
                after,
                exc,
            )

    product, gone, again, bad, changes, after, err = run(app, scenario)
    assert product["product"]["id"] == 9 and product["product"]["name"] == "Кабель"
    assert (gone, again, bad) == (200, 404, 404)
    assert [(c["entity"], c["id"], c["change"]) for c in changes] == [
        ("lead", 3, "upsert"),
        ("product", 9, "upsert"),
        ("lead", 3, "delete"),
    ]
    assert changes[0]["version"] == "2026-01-01T10:00:00+03:00"
    assert after == [] and err.description == "Not found"


def test_fault_on_one_entity_id_hits_one_batch_command(app):
    async def scenario(client, admin):
        for i in (1, 2, 3):
            await put(admin, "deal", i, {"TITLE": f"d{i}"})
        await admin.post(
            "/_emulator/faults",
            json={
                "method": "crm.deal.get",
                "entity_id": "2",
                "status": 403,
                "error": "ACCESS_DENIED",
                "description": "Access denied",
                "times": 1,
            },
        )
        return await client.call(
            "batch", {"halt": 0, "cmd": {f"c{i}": f"crm.deal.get?id={i}" for i in (1, 2, 3)}}
        )

    result = run(app, scenario)
    assert sorted(result["result"]) == ["c1", "c3"]
    assert result["result_error"] == {
        "c2": {"error": "ACCESS_DENIED", "error_description": "Access denied"}
    }
