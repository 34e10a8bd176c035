"""The emulator's deal product rows (``crm.deal.productrows.set`` / ``.get``), what the
instant-order and return flows read the goods from: through the ASGI app and the real
client, as test_emulator_writes.py drives the other write methods."""

from __future__ import annotations

import pytest

from devstack.emulators.bitrix24 import create_app
from tests.connectors.bitrix24.conftest import raw_call, run_in_process

HOOK = "/rest/1/rowstest/"
BASE = "http://portal.test"


@pytest.fixture
def app():
    return create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)


def run(app, scenario):
    return run_in_process(app, HOOK, scenario, BASE)


async def raw(admin, method, params):
    return await raw_call(admin, HOOK, method, params)


def test_rows_set_on_a_deal_read_back_as_the_portal_answers_them(app):
    async def scenario(client, admin):
        deal = await client.call("crm.deal.add", {"fields": {"TITLE": "Мгновенный заказ"}})
        done = await client.call(
            "crm.deal.productrows.set",
            {
                "id": deal,
                "rows": [
                    {"PRODUCT_ID": "7", "PRODUCT_NAME": "Чехол", "PRICE": "250", "QUANTITY": 2},
                    {"product_id": 8, "price": 99.9, "quantity": "0.5", "TAX_INCLUDED": "Y"},
                ],
            },
        )
        return deal, done, await client.call("crm.deal.productrows.get", {"id": deal})

    deal, done, rows = run(app, scenario)
    assert done is True
    assert [r["PRODUCT_ID"] for r in rows] == [7, 8]
    assert all(r["OWNER_ID"] == str(deal) and r["OWNER_TYPE"] == "D" for r in rows)
    first, second = rows
    assert (first["PRICE"], first["QUANTITY"]) == (250.0, 2.0)
    assert isinstance(first["PRICE"], float) and isinstance(first["QUANTITY"], float)
    assert (second["PRICE"], second["QUANTITY"]) == (99.9, 0.5)
    assert first["PRODUCT_NAME"] == "Чехол" and first["MEASURE_NAME"] == "шт"
    assert first["TAX_INCLUDED"] == "N" and second["TAX_INCLUDED"] == "Y"
    assert first["DISCOUNT_SUM"] == 0.0
    assert len({r["ID"] for r in rows}) == 2


def test_rows_set_replaces_every_row_of_the_deal(app):
    async def scenario(client, admin):
        deal = await client.call("crm.deal.add", {"fields": {"TITLE": "Возврат"}})
        other = await client.call("crm.deal.add", {"fields": {"TITLE": "Другая"}})
        await client.call(
            "crm.deal.productrows.set",
            {
                "id": deal,
                "rows": [{"PRODUCT_ID": 1, "QUANTITY": 1}, {"PRODUCT_ID": 2, "QUANTITY": 1}],
            },
        )
        await client.call(
            "crm.deal.productrows.set", {"id": other, "rows": [{"PRODUCT_ID": 9, "QUANTITY": 1}]}
        )
        await client.call(
            "crm.deal.productrows.set", {"id": deal, "rows": [{"PRODUCT_ID": 3, "QUANTITY": 4}]}
        )
        replaced = await client.call("crm.deal.productrows.get", {"id": deal})
        await client.call("crm.deal.productrows.set", {"id": deal, "rows": []})
        emptied = await client.call("crm.deal.productrows.get", {"id": deal})
        untouched = await client.call("crm.deal.productrows.get", {"id": other})
        return replaced, emptied, untouched

    replaced, emptied, untouched = run(app, scenario)
    assert [(r["PRODUCT_ID"], r["QUANTITY"]) for r in replaced] == [(3, 4.0)]
    assert emptied == []
    assert [r["PRODUCT_ID"] for r in untouched] == [9]


def test_a_deal_without_rows_reads_as_an_empty_list(app):
    async def scenario(client, admin):
        deal = await client.call("crm.deal.add", {"fields": {"TITLE": "Пустая"}})
        return await client.call("crm.deal.productrows.get", {"id": deal})

    assert run(app, scenario) == []


def test_rows_of_an_unknown_deal_are_a_legacy_error(app):
    async def scenario(client, admin):
        return [
            await raw(
                admin,
                "crm.deal.productrows.set",
                {"id": 404, "rows": [{"PRODUCT_ID": 1, "QUANTITY": 1}]},
            ),
            await raw(admin, "crm.deal.productrows.get", {"id": 404}),
            await raw(admin, "crm.deal.productrows.get", {}),
        ]

    answers = run(app, scenario)
    assert [status for status, _ in answers] == [400, 400, 400]
    assert all(body["error"] == "" for _, body in answers)
    assert [body["error_description"] for _, body in answers[:2]] == ["Not found", "Not found"]
    assert answers[2][1]["error_description"] == "ID is not defined or invalid."


@pytest.mark.parametrize("rows", [{"PRODUCT_ID": 1}, "oops", [1, 2]])
def test_rows_that_are_not_a_list_of_rows_are_refused(app, rows):
    async def scenario(client, admin):
        deal = await client.call("crm.deal.add", {"fields": {"TITLE": "x"}})
        await client.call(
            "crm.deal.productrows.set", {"id": deal, "rows": [{"PRODUCT_ID": 5, "QUANTITY": 1}]}
        )
        refused = await raw(admin, "crm.deal.productrows.set", {"id": deal, "rows": rows})
        return refused, await client.call("crm.deal.productrows.get", {"id": deal})

    (status, body), kept = run(app, scenario)
    assert status == 400 and body["error"] == ""
    assert body["error_description"] == "Parameter 'rows' must be array."
    assert [r["PRODUCT_ID"] for r in kept] == [5]  # a refused write changes nothing


def test_a_placeholder_row_with_zero_quantity_keeps_it(app):
    # The instant-order flow drops zero-quantity rows as placeholders (goods_lines); the
    # emulator must not turn them into real goods.
    async def scenario(client, admin):
        deal = await client.call("crm.deal.add", {"fields": {"TITLE": "x"}})
        await client.call(
            "crm.deal.productrows.set", {"id": deal, "rows": [{"PRODUCT_ID": 5, "QUANTITY": 0}]}
        )
        return await client.call("crm.deal.productrows.get", {"id": deal})

    assert [r["QUANTITY"] for r in run(app, scenario)] == [0.0]
