"""Products on the shared create-or-update by external key (stages/egress/bitrix24_master.py
``_XmlIdAction``): what only products have — the catalog's ``iblockId`` in every lookup and
add, the ``{element: {id}}`` answer of an add — and what they share (the oldest of duplicates
wins, a deletion deactivates and creates nothing), against the emulator (ASGI) with the
crosswalk on real PostgreSQL."""

from __future__ import annotations

import uuid

from mmstream.models.product import Product
from stages.egress.bitrix24_product import ProductAction, product_fields
from tests.stages.egress.test_bitrix24_master import act, calls, change, row


def product(ref: str, name: str, **fields) -> dict:
    return row(Product, id=ref, name=name, **fields)


async def portal(admin) -> list[tuple[int, int, str, str, str]]:
    return [
        (p["id"], p["iblockId"], p["xmlId"], p["name"], p["active"])
        for p in (await admin.get("/_emulator/products")).json()
    ]


def test_the_canonical_product_maps_to_catalog_product_fields():
    ref = str(uuid.uuid4())
    assert product_fields(product(ref, "Мойка", code="00-1", full_name="Мойка кухонная")) == {
        "name": "Мойка",
        "xmlId": ref,
        "code": "00-1",
        "active": "Y",
        "previewText": "Мойка кухонная",
    }
    assert product_fields(product(ref, "Мойка", deleted=True))["active"] == "N"


def test_a_product_is_added_to_the_configured_catalog_and_found_only_there(db_url):
    ref = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        elsewhere = ProductAction(targets)
        elsewhere.iblock_id = 25
        first = await elsewhere.apply(change("product", product(ref, "Чай")), xwalk)
        # The same product for the catalog of iblock 14: the one in iblock 25 is not it.
        await _unlink(xwalk, ref)
        here = await ProductAction(targets).apply(change("product", product(ref, "Чай")), xwalk)
        lists = [c["params"]["filter"] for c in await calls(admin, "catalog.product.list")]
        return first, here, await portal(admin), lists

    first, here, products, filters = act(db_url, scenario)
    assert (first, here) == ("1", "2")
    assert products == [(1, 25, ref, "Чай", "Y"), (2, 14, ref, "Чай", "Y")]
    assert all("iblockId" in f for f in filters)


async def _unlink(xwalk, ref: str) -> None:
    from sqlalchemy import text

    async with xwalk.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM crosswalk WHERE entity = 'product' AND canonical_id = :ref"),
            {"ref": ref},
        )


def test_the_oldest_of_duplicate_products_is_updated_and_nothing_added(db_url):
    ref = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        for name in ("первый", "второй", "третий"):  # duplicates an older release created
            await targets.bitrix24.call(
                "catalog.product.add", {"fields": {"iblockId": 14, "name": name, "xmlId": ref}}
            )
        ident = await ProductAction(targets).apply(change("product", product(ref, "Чай")), xwalk)
        return (
            ident,
            await portal(admin),
            len(await calls(admin, "catalog.product.add")),
            await xwalk.external_id("product", "bitrix24", ref),
        )

    ident, products, adds, linked = act(db_url, scenario)
    assert ident == linked == "1" and adds == 3
    assert [p[3] for p in products] == ["Чай", "второй", "третий"]


def test_a_deletion_deactivates_our_product_and_creates_nothing(db_url):
    ours, unknown = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        action = ProductAction(targets)
        await action.apply(change("product", product(ours, "Чай")), xwalk)
        gone = await action.apply(
            change("product", product(ours, "Чай", deleted=True), "delete"), xwalk
        )
        never = await action.apply(
            change("product", product(unknown, "Кофе", deleted=True), "delete"), xwalk
        )
        return gone, never, await portal(admin)

    gone, never, products = act(db_url, scenario)
    assert gone == "1" and never is None
    assert products == [(1, 14, ours, "Чай", "N")]


def test_a_product_group_is_written_like_a_product(db_url):
    # The product flow always wrote 1С groups as catalog products (sections are not modelled).
    ref = str(uuid.uuid4())

    async def scenario(targets, xwalk, admin):
        ident = await ProductAction(targets).apply(
            change("product", product(ref, "Сантехника", is_folder=True)), xwalk
        )
        return ident, await portal(admin)

    ident, products = act(db_url, scenario)
    assert ident == "1" and products == [(1, 14, ref, "Сантехника", "Y")]
