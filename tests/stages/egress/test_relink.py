"""Self-repairing master data (stages/egress/relink.py): the pure decision whether the
object at a crosswalked id is ours, and the actions recreating what a manager deleted in
Bitrix24 and relinking ids a reset portal reissued — against the emulator (ASGI) with the
crosswalk on real PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from mmstream.models.counterparty import Counterparty
from mmstream.models.price import Price, price_id
from mmstream.models.price_type import PriceType
from mmstream.models.warehouse import Warehouse
from stages.egress.bitrix24_master import (
    CounterpartyAction,
    PriceAction,
    PriceTypeAction,
    WarehouseAction,
)
from stages.egress.bitrix24_product import ProductAction
from stages.egress.delivery import Crosswalk, DependencyPending
from stages.egress.relink import LinkState, link_state
from tests.stages.egress.test_bitrix24_master import act, calls, change, row

OURS = "5f2b8a3e-0c1d-4e5f-8a9b-1c2d3e4f5a6b"


@pytest.mark.parametrize(
    ("found", "keyless_is_ours", "state"),
    [
        (None, False, LinkState.GONE),
        (None, True, LinkState.GONE),
        ({"id": 3, "xmlId": OURS}, False, LinkState.OURS),
        ({"id": 3, "xmlId": f" {OURS} "}, False, LinkState.OURS),
        ({"id": 3, "xmlId": "другой"}, False, LinkState.OTHER),
        ({"id": 3, "xmlId": "другой"}, True, LinkState.OTHER),
        # A catalog row without our key was not written by us (egress always writes it; the
        # portal stamps a product saved without one with its own id).
        ({"id": 3, "xmlId": None}, False, LinkState.OTHER),
        ({"id": 3, "xmlId": "3"}, False, LinkState.OTHER),
        # A CRM record born in Bitrix24 has no ORIGIN_ID until our update stamps it.
        ({"ID": "3", "xmlId": ""}, True, LinkState.OURS),
    ],
)
def test_whether_the_object_at_a_crosswalked_id_is_ours(found, keyless_is_ours, state):
    assert link_state(found, "xmlId", OURS, keyless_is_ours=keyless_is_ours) is state


def test_crm_records_are_compared_by_origin_id():
    assert link_state({"ID": "4", "ORIGIN_ID": OURS}, "ORIGIN_ID", OURS) is LinkState.OURS
    assert (
        link_state({"ID": "4", "ORIGIN_ID": "x"}, "ORIGIN_ID", OURS, keyless_is_ours=True)
        is LinkState.OTHER
    )


def product(ref: str, name: str) -> dict:
    return {"id": ref, "name": name, "code": "", "deleted": False}


async def products(admin) -> list[tuple[int, str, str]]:
    return [
        (p["id"], p["xmlId"], p["name"]) for p in (await admin.get("/_emulator/products")).json()
    ]


def test_a_product_deleted_in_bitrix24_is_created_again_once(db_url):
    ref = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = ProductAction(targets)
        first = await action.apply(change("product", product(ref, "Чай")), xwalk)
        await admin.delete(f"/_emulator/entities/product/{first}")
        again = await action.apply(change("product", product(ref, "Чай 2")), xwalk)
        # The same change once more (a retry after a lost answer): updated, not re-added.
        retried = await action.apply(change("product", product(ref, "Чай 2")), xwalk)
        return (
            first,
            again,
            retried,
            await products(admin),
            await xwalk.external_id("product", "bitrix24", ref),
            len(await calls(admin, "catalog.product.add")),
        )

    first, again, retried, portal, linked, adds = act(db_url, scenario)
    assert first == "1" and again == retried == linked == "2"
    assert portal == [(2, ref, "Чай 2")] and adds == 2


def test_a_recreate_whose_answer_was_lost_is_found_by_xml_id_not_added_twice(db_url):
    ref = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = ProductAction(targets)
        first = await action.apply(change("product", product(ref, "Чай")), xwalk)
        await admin.delete(f"/_emulator/entities/product/{first}")
        # An earlier attempt recreated it, but the answer (and the relink) was lost.
        await targets.bitrix24.call(
            "catalog.product.add", {"fields": {"iblockId": 14, "name": "Чай", "xmlId": ref}}
        )
        again = await action.apply(change("product", product(ref, "Чай 3")), xwalk)
        return again, await products(admin), len(await calls(admin, "catalog.product.add"))

    again, portal, adds = act(db_url, scenario)
    assert again == "2" and portal == [(2, ref, "Чай 3")] and adds == 2


def test_a_reissued_product_id_is_relinked_and_the_other_product_not_overwritten(db_url):
    ours = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = ProductAction(targets)
        await action.apply(change("product", product(ours, "Наш")), xwalk)  # id 1
        await admin.post("/_emulator/reset")
        # The new portal gives id 1 to a manager's own product (no external code).
        await targets.bitrix24.call(
            "catalog.product.add", {"fields": {"iblockId": 14, "name": "Менеджерский"}}
        )
        again = await action.apply(change("product", product(ours, "Наш 2")), xwalk)
        return (
            again,
            await products(admin),
            await xwalk.external_id("product", "bitrix24", ours),
            await calls(admin, "catalog.product.update"),
        )

    again, portal, linked, updates = act(db_url, scenario)
    assert again == linked == "2"
    assert portal == [(1, "1", "Менеджерский"), (2, ours, "Наш 2")]
    assert updates == []  # nothing written over the manager's product


def test_an_id_taken_by_another_of_ours_moves_its_stale_link(db_url):
    """After a reset, B is created first and gets A's old id: B's link takes that id from
    A's stale link (not "linked to … already"), and A's next change recreates A."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = ProductAction(targets)
        await action.apply(change("product", product(a, "A")), xwalk)  # 1
        await action.apply(change("product", product(b, "B")), xwalk)  # 2
        await admin.post("/_emulator/reset")
        b_id = await action.apply(change("product", product(b, "B2")), xwalk)  # gone -> 1
        # Read afresh (one delivery's crosswalk remembers what it read itself).
        a_mid = await Crosswalk(xwalk.engine).external_id("product", "bitrix24", a)
        a_id = await action.apply(change("product", product(a, "A2")), xwalk)
        return (
            b_id,
            a_mid,
            a_id,
            await products(admin),
            await xwalk.external_id("product", "bitrix24", a),
            await xwalk.external_id("product", "bitrix24", b),
            await xwalk.canonical_id("product", "bitrix24", "1"),
        )

    b_id, a_mid, a_id, portal, a_link, b_link, owner_of_1 = act(db_url, scenario)
    assert b_id == b_link == "1" and owner_of_1 == b
    assert a_mid is None  # A's link to 1 was provably stale: dropped
    assert a_id == a_link == "2"
    assert portal == [(1, b, "B2"), (2, a, "A2")]


def test_a_deleted_company_is_created_again_and_a_reissued_one_is_left_alone(db_url):
    ours, other = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = CounterpartyAction(targets)
        payload = row(Counterparty, id=ours, kind="partner", name="Ромашка", phones=("+7 495 1",))
        first = await action.apply(change("counterparty", payload), xwalk)
        await admin.delete("/_emulator/entities/company/1")
        again = await action.apply(change("counterparty", {**payload, "name": "Ромашка 2"}), xwalk)
        # Reset: another integration's company takes id 1 and ours id 2 is gone.
        await admin.post("/_emulator/reset")
        await admin.put(
            "/_emulator/entities/company/2", json={"TITLE": "Чужая", "ORIGIN_ID": other}
        )
        third = await action.apply(change("counterparty", {**payload, "name": "Ромашка 3"}), xwalk)
        companies = (await admin.get("/_emulator/entities/company")).json()
        return (
            first,
            again,
            third,
            companies,
            await calls(admin, "crm.company.update"),
            await xwalk.external_id("counterparty", "bitrix24", ours),
        )

    first, again, third, companies, updates, linked = act(db_url, scenario)
    assert first == "company:1" and again == "company:2"
    assert third == linked == "company:3"
    assert sorted(
        (c["ID"], c["TITLE"], c["ORIGIN_ID"], [p["VALUE"] for p in c.get("PHONE") or []])
        for c in companies
    ) == [("2", "Чужая", other, []), ("3", "Ромашка 3", ours, ["+7 495 1"])]
    assert updates == []


def test_a_deleted_warehouse_and_price_type_are_created_again(db_url):
    store, ptype = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        wh, pt = WarehouseAction(targets), PriceTypeAction(targets)
        store_row = row(Warehouse, id=store, name="Склад", address="Москва")
        type_row = row(PriceType, id=ptype, name="Розничная")
        await wh.apply(change("warehouse", store_row), xwalk)
        await pt.apply(change("price_type", type_row), xwalk)
        await admin.delete("/_emulator/entities/store/1")
        await admin.delete("/_emulator/entities/priceType/1")
        # A deletion of a warehouse that is gone writes nothing and creates nothing.
        gone = await wh.apply(change("warehouse", store_row, kind="delete"), xwalk)
        store_id = await wh.apply(change("warehouse", {**store_row, "name": "Склад 2"}), xwalk)
        type_id = await pt.apply(change("price_type", {**type_row, "name": "Опт"}), xwalk)
        return (
            gone,
            store_id,
            type_id,
            (await admin.get("/_emulator/directory/store")).json(),
            (await admin.get("/_emulator/directory/priceType")).json(),
            await calls(admin, "catalog.store.update"),
            await xwalk.external_id("warehouse", "bitrix24", store),
        )

    gone, store_id, type_id, stores, types, store_updates, linked = act(db_url, scenario)
    assert gone == "1" and store_id == linked == "2" and type_id == "2"
    assert [(s["id"], s["title"], s["xmlId"]) for s in stores] == [(2, "Склад 2", store)]
    assert [(t["id"], t["name"], t["xmlId"]) for t in types] == [(2, "Опт", ptype)]
    assert store_updates == []


def test_a_price_follows_its_recreated_product_and_is_set_again(db_url):
    ref, ptype = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        await ProductAction(targets).apply(change("product", product(ref, "Чай")), xwalk)
        await PriceTypeAction(targets).apply(
            change("price_type", row(PriceType, id=ptype, name="Розничная")), xwalk
        )
        action = PriceAction(targets)
        payload = row(
            Price,
            id=str(price_id(uuid.UUID(ref), None, uuid.UUID(ptype))),
            product_id=ref,
            price_type_id=ptype,
            price=Decimal("10"),
        )
        await action.apply(change("price", payload), xwalk)
        await admin.delete("/_emulator/entities/product/1")  # its price goes with it
        with pytest.raises(DependencyPending, match="is gone from Bitrix24"):
            await action.apply(change("price", {**payload, "price": 11}), xwalk)
        # The product's next change recreates it; the price then lands on the new one.
        await ProductAction(targets).apply(change("product", product(ref, "Чай 2")), xwalk)
        again = await action.apply(change("price", {**payload, "price": 12}), xwalk)
        return again, (await admin.get("/_emulator/directory/price")).json()

    again, prices = act(db_url, scenario)
    assert again == "2"
    assert [(p["productId"], p["price"]) for p in prices] == [(2, 12.0)]


def test_a_not_found_answer_alone_never_makes_a_second_product(db_url):
    """The update says "gone" (deleted between the check and the update, or a wrong
    answer): the look-up by xmlId decides, so a product still there is updated, not
    duplicated."""
    ref = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = ProductAction(targets)
        first = await action.apply(change("product", product(ref, "Чай")), xwalk)
        await admin.post(
            "/_emulator/faults",
            json={
                "method": "catalog.product.update",
                "status": 400,
                "error": "0",
                "description": "product does not exist.",
                "times": 1,
            },
        )
        again = await action.apply(change("product", product(ref, "Чай 2")), xwalk)
        return first, again, await products(admin), len(await calls(admin, "catalog.product.add"))

    first, again, portal, adds = act(db_url, scenario)
    assert first == again == "1" and portal == [(1, ref, "Чай 2")] and adds == 1
