"""The emulator's write methods, answering as the real portal: legacy ``crm.<type>.*``
writes, ``crm.item.*`` and ``tasks.task.*`` writes, warehouses, price types, prices and
``user.get`` over seeded users — through the ASGI app and the real client."""

from __future__ import annotations

import pytest

from connectors.bitrix24.errors import InvalidRequest
from devstack.emulators.bitrix24 import create_app
from tests.connectors.bitrix24.conftest import raw_call, run_in_process

HOOK = "/rest/1/writetest/"
BASE = "http://portal.test"


@pytest.fixture
def app():
    return create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)


def run(app, scenario):
    return run_in_process(app, HOOK, scenario, BASE)


async def raw(admin, method, params):
    return await raw_call(admin, HOOK, method, params)


@pytest.mark.parametrize(
    "entity,fields",
    [
        ("company", {"TITLE": "ООО Ромашка"}),
        ("contact", {"NAME": "Иван", "LAST_NAME": "Петров"}),
        ("deal", {"TITLE": "Заказ"}),
        ("lead", {"TITLE": "Лид"}),
    ],
)
def test_crm_add_returns_an_integer_id_and_the_record_reads_back(app, entity, fields):
    async def scenario(client, admin):
        first = await client.call(
            f"crm.{entity}.add",
            {"fields": {**fields, "ORIGIN_ID": "guid-1", "ORIGINATOR_ID": "1c", "ID": 999}},
        )
        second = await client.call(f"crm.{entity}.add", {"fields": dict(fields)})
        found = await client.call(
            f"crm.{entity}.list",
            {"filter": {"ORIGIN_ID": "guid-1"}, "select": ["ID", "ORIGINATOR_ID"]},
        )
        got = await client.call(f"crm.{entity}.get", {"id": first})
        changes = (await admin.get("/_emulator/changes", params={"entity": entity})).json()
        return first, second, found, got, changes

    first, second, found, got, changes = run(app, scenario)
    assert isinstance(first, int) and second == first + 1
    assert found == [{"ID": str(first), "ORIGINATOR_ID": "1c"}]
    assert got["ID"] == str(first) and got["ORIGIN_ID"] == "guid-1"
    assert got["DATE_MODIFY"] and got["DATE_CREATE"]
    assert [c["id"] for c in changes] == [first, second]


def test_crm_update_changes_fields_and_moves_date_modify(app):
    async def scenario(client, admin):
        ident = await client.call("crm.company.add", {"fields": {"TITLE": "Старое"}})
        await admin.put(
            f"/_emulator/entities/company/{ident}",
            json={"DATE_MODIFY": "2020-01-01T00:00:00+03:00"},
        )
        updated = await client.call(
            "crm.company.update",
            {"id": ident, "fields": {"TITLE": "Новое", "DATE_MODIFY": "1999-01-01"}},
        )
        return updated, await client.call("crm.company.get", {"id": ident})

    updated, company = run(app, scenario)
    assert updated is True
    assert company["TITLE"] == "Новое"
    assert not company["DATE_MODIFY"].startswith(("2020", "1999"))


def test_crm_multifields_get_ids_and_update_by_id(app):
    async def scenario(client, admin):
        ident = await client.call(
            "crm.contact.add",
            {
                "fields": {
                    "NAME": "Анна",
                    "PHONE": [{"VALUE": "+7 900 000-00-01", "VALUE_TYPE": "WORK"}],
                }
            },
        )
        before = await client.call("crm.contact.get", {"id": ident})
        phone_id = before["PHONE"][0]["ID"]
        await client.call(
            "crm.contact.update",
            {
                "id": ident,
                "fields": {
                    "PHONE": [{"ID": phone_id, "VALUE": "+7 900 000-00-02"}],
                    "EMAIL": [{"VALUE": "anna@example.com"}],
                },
            },
        )
        return before, await client.call("crm.contact.get", {"id": ident})

    before, after = run(app, scenario)
    assert before["HAS_PHONE"] == "Y"
    assert [p["VALUE"] for p in after["PHONE"]] == ["+7 900 000-00-02"]
    assert after["EMAIL"][0]["VALUE"] == "anna@example.com" and after["HAS_EMAIL"] == "Y"


def test_crm_write_errors_are_legacy_errors(app):
    async def scenario(client, admin):
        return [
            await raw(admin, "crm.company.update", {"id": 77, "fields": {"TITLE": "x"}}),
            await raw(admin, "crm.company.add", {"fields": {"COMMENTS": "no title"}}),
            await raw(admin, "crm.deal.add", {"fields": "oops"}),
            await raw(admin, "crm.contact.delete", {"id": "abc"}),
        ]

    answers = run(app, scenario)
    assert [status for status, _ in answers] == [400, 400, 400, 400]
    assert all(body["error"] == "" for _, body in answers)
    assert answers[0][1]["error_description"] == "Not found"


def test_crm_delete_removes_and_ids_are_not_reused(app):
    async def scenario(client, admin):
        first = await client.call("crm.deal.add", {"fields": {"TITLE": "a"}})
        deleted = await client.call("crm.deal.delete", {"id": first})
        second = await client.call("crm.deal.add", {"fields": {"TITLE": "b"}})
        with pytest.raises(InvalidRequest):
            await client.call("crm.deal.get", {"id": first})
        return first, deleted, second

    first, deleted, second = run(app, scenario)
    assert deleted is True and second == first + 1


def test_crm_add_works_inside_a_batch(app):
    async def scenario(client, admin):
        result = await client.call(
            "batch",
            {"halt": 0, "cmd": {"a": "crm.company.add?fields[TITLE]=Альфа&fields[ORIGIN_ID]=g-a"}},
        )
        return result, await client.call("crm.company.list", {"filter": {"ORIGIN_ID": "g-a"}})

    result, found = run(app, scenario)
    assert result["result"]["a"] == int(found[0]["ID"])


def test_crm_item_add_and_update_answer_camel_case_items(app):
    async def scenario(client, admin):
        added = await client.call(
            "crm.item.add",
            {
                "entityTypeId": 133,
                "fields": {"title": "Доставка", "xmlId": "g-1", "ufCrm5Address": "Ленина 1"},
            },
        )
        ident = added["item"]["id"]
        updated = await client.call(
            "crm.item.update", {"entityTypeId": 133, "id": ident, "fields": {"title": "Доставка 2"}}
        )
        found = await client.call(
            "crm.item.list", {"entityTypeId": 133, "filter": {"xmlId": "g-1"}}
        )
        missing = await raw(
            admin, "crm.item.update", {"entityTypeId": 133, "id": 999, "fields": {"title": "x"}}
        )
        no_type = await raw(admin, "crm.item.add", {"fields": {"title": "x"}})
        return added, updated, found, missing, no_type

    added, updated, found, missing, no_type = run(app, scenario)
    item = added["item"]
    assert item["id"] == 1 and item["entityTypeId"] == 133 and item["ufCrm5Address"] == "Ленина 1"
    assert updated["item"]["title"] == "Доставка 2" and updated["item"]["xmlId"] == "g-1"
    assert [i["id"] for i in found["items"]] == [1]
    assert missing == (400, {"error": "NOT_FOUND", "error_description": "Элемент не найден"})
    assert no_type[0] == 400 and no_type[1]["error"] == 100


def test_tasks_task_add_takes_upper_case_and_answers_camel_case(app):
    async def scenario(client, admin):
        added = await client.call(
            "tasks.task.add",
            {"fields": {"TITLE": "Доставить заказ", "RESPONSIBLE_ID": 7, "UF_CRM_TASK": ["D_12"]}},
        )
        ident = added["task"]["id"]
        updated = await client.call("tasks.task.update", {"taskId": ident, "fields": {"STATUS": 5}})
        untitled = await raw(admin, "tasks.task.add", {"fields": {"RESPONSIBLE_ID": 1}})
        missing = await raw(admin, "tasks.task.update", {"taskId": 999, "fields": {"STATUS": 5}})
        return added, updated, untitled, missing

    added, updated, untitled, missing = run(app, scenario)
    task = added["task"]
    assert task["id"] == "1" and task["title"] == "Доставить заказ"
    assert task["responsibleId"] == "7" and task["ufCrmTask"] == ["D_12"]
    assert updated["task"]["status"] == "5" and updated["task"]["title"] == "Доставить заказ"
    assert untitled[0] == 400 and untitled[1]["error"] == "ERROR_CORE"
    assert missing[0] == 400


def test_catalog_store_and_price_type_add_update_and_list_by_xml_id(app):
    async def scenario(client, admin):
        store = await client.call(
            "catalog.store.add",
            {"fields": {"title": "Основной", "address": "Склад 1", "xmlId": "wh-1"}},
        )
        sid = store["store"]["id"]
        await client.call("catalog.store.update", {"id": sid, "fields": {"title": "Главный"}})
        stores = await client.call("catalog.store.list", {"filter": {"xmlId": "wh-1"}})
        no_address = await raw(admin, "catalog.store.add", {"fields": {"title": "x"}})
        ptype = await client.call(
            "catalog.priceType.add", {"fields": {"name": "Розничная", "xmlId": "pt-1"}}
        )
        types = await client.call(
            "catalog.priceType.list", {"filter": {"xmlId": "pt-1"}, "select": ["id", "name"]}
        )
        missing = await raw(admin, "catalog.priceType.update", {"id": 99, "fields": {"name": "x"}})
        return store, stores, no_address, ptype, types, missing

    store, stores, no_address, ptype, types, missing = run(app, scenario)
    assert isinstance(store["store"]["id"], int) and store["store"]["active"] == "Y"
    assert [(s["title"], s["xmlId"]) for s in stores["stores"]] == [("Главный", "wh-1")]
    assert no_address[0] == 400 and "address" in no_address[1]["error_description"]
    assert ptype["priceType"]["name"] == "Розничная" and ptype["priceType"]["base"] == "N"
    assert types == {"priceTypes": [{"id": ptype["priceType"]["id"], "name": "Розничная"}]}
    # As catalog.priceType.update's docs list it: ErrorCode::PRICE_TYPE_ENTITY_NOT_EXISTS.
    assert missing[0] == 400 and str(missing[1]["error"]) == "201000000000"


def test_catalog_price_needs_product_and_price_type_and_filters_by_both(app):
    async def scenario(client, admin):
        product = await client.call(
            "catalog.product.add", {"fields": {"iblockId": 14, "name": "Чай"}}
        )
        pid = product["element"]["id"]
        ptype = (await client.call("catalog.priceType.add", {"fields": {"name": "Опт"}}))[
            "priceType"
        ]["id"]
        no_product = await raw(
            admin,
            "catalog.price.add",
            {"fields": {"productId": 999, "catalogGroupId": ptype, "price": 10, "currency": "RUB"}},
        )
        no_type = await raw(
            admin,
            "catalog.price.add",
            {"fields": {"productId": pid, "catalogGroupId": 999, "price": 10, "currency": "RUB"}},
        )
        added = await client.call(
            "catalog.price.add",
            {
                "fields": {
                    "productId": pid,
                    "catalogGroupId": ptype,
                    "price": "120.50",
                    "currency": "RUB",
                }
            },
        )
        await client.call(
            "catalog.price.update", {"id": added["price"]["id"], "fields": {"price": 130}}
        )
        listed = await client.call(
            "catalog.price.list", {"filter": {"productId": pid, "catalogGroupId": ptype}}
        )
        other = await client.call("catalog.price.list", {"filter": {"productId": pid + 1}})
        return no_product, no_type, added, listed, other

    no_product, no_type, added, listed, other = run(app, scenario)
    assert no_product[0] == 400 and no_type[0] == 400
    assert added["price"]["price"] == 120.5 and added["price"]["priceScale"] == 120.5
    assert [p["price"] for p in listed["prices"]] == [130.0]
    assert other == {"prices": []}


def test_user_get_finds_seeded_users_by_email_xml_id_and_uf_fields(app):
    async def scenario(client, admin):
        for fields in (
            {"NAME": "Пётр", "EMAIL": "Petr@Example.com", "XML_ID": "emp-1"},
            {
                "NAME": "Олег",
                "EMAIL": "oleg@example.com",
                "UF_EMPLOYEE_GUID": "g2",
                "ACTIVE": False,
            },
        ):
            (await admin.post("/_emulator/users", json=fields)).raise_for_status()
        return [
            await client.call("user.get", {"FILTER": {"EMAIL": "petr@example.com"}}),
            await client.call("user.get", {"XML_ID": "emp-1"}),
            await client.call("user.get", {"filter": {"UF_EMPLOYEE_GUID": "g2"}}),
            await client.call("user.get", {"FILTER": {"UF_EMPLOYEE_GUID": "g2", "ACTIVE": True}}),
            await client.call("user.get", {"FILTER": {"EMAIL": "nobody@example.com"}}),
        ]

    by_email, by_xml, by_uf, active_only, nobody = run(app, scenario)
    assert [u["ID"] for u in by_email] == ["1"] and by_email[0]["NAME"] == "Пётр"
    assert [u["ID"] for u in by_xml] == ["1"]
    assert [u["ID"] for u in by_uf] == ["2"]
    assert active_only == [] and nobody == []


def test_admin_reads_list_directory_and_entities(app):
    async def scenario(client, admin):
        await client.call("catalog.store.add", {"fields": {"title": "A", "address": "B"}})
        await client.call("crm.company.add", {"fields": {"TITLE": "C"}})
        stores = (await admin.get("/_emulator/directory/store")).json()
        companies = (await admin.get("/_emulator/entities/company")).json()
        unknown = await admin.get("/_emulator/directory/nope")
        await admin.post("/_emulator/reset")
        after = (await admin.get("/_emulator/directory/store")).json()
        return stores, companies, unknown.status_code, after

    stores, companies, unknown, after = run(app, scenario)
    assert [s["title"] for s in stores] == ["A"]
    assert [c["TITLE"] for c in companies] == ["C"]
    assert unknown == 404 and after == []
