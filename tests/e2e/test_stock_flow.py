"""Stock end to end on the real broker, PostgreSQL and processes, with the Bitrix24 emulator:

* 1С pushes ТоварыНаСкладах balances of a courier's walking warehouse -> bridge -> entity
  sink -> egress -> the store balance in Bitrix24, written through a conducted warehouse
  document. Several quick changes end in one write of the final value (coalesced), and a
  later balance moves it again;
* an instant order the courier takes in Bitrix24 (a deal in the courier funnel assigned to
  them) reserves its goods from that warehouse (``stock.order_reserve``) until 1С answers
  with a balance as of a later moment; a lost deal releases it.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from mmstream.models.stock import stock_id
from tests.e2e.conftest import INSTANT
from tests.support.stack import onec_product, wait_for

pytestmark = pytest.mark.e2e

ZERO = "00000000-0000-0000-0000-000000000000"
COURIER = 1  # the Bitrix24 user the test seeds first
WAREHOUSE, PRODUCT = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture
def stack_settings(stack_settings):
    """The shared stack's settings (tests/e2e/conftest.py; its retry budget outlasts stock
    waiting on the delayed path for its warehouse and product) plus the courier's walking
    warehouse."""
    stock = stack_settings.stock.model_copy(update={"walking_warehouses": {WAREHOUSE: COURIER}})
    return stack_settings.model_copy(update={"stock": stock})


def balance(quantity: float) -> dict:
    """A row of AccumulationRegister_ТоварыНаСкладах/Balance (УТ 11), as our extension pushes it."""
    return {
        "Склад_Key": WAREHOUSE,
        "Номенклатура_Key": PRODUCT,
        "Характеристика_Key": ZERO,
        "ВНаличииBalance": quantity,
        "ВРезервеСоСкладаBalance": 0,
    }


def store_amount(stack, store: int, product: int) -> float | None:
    rows = stack.rest(
        "catalog.storeproduct.list",
        {
            "select": ["id", "storeId", "productId", "amount"],
            "filter": {"storeId": store, "productId": product},
        },
    )["storeProducts"]
    return rows[0]["amount"] if rows else None


def test_balances_reach_the_store_coalesced_and_an_instant_order_reserves_from_the_courier(stack):
    stack.start_emulator()
    httpx.post(
        f"{stack.emulator_url}/_emulator/users",
        timeout=10,
        json={"ID": COURIER, "NAME": "Иван", "LAST_NAME": "Курьеров"},
    ).raise_for_status()
    stack.start_sink()
    stack.start_entity_sink()
    stack.start_egress()
    stack.start_bridge()
    stack.start_enrich()
    row = str(stock_id(uuid.UUID(WAREHOUSE), uuid.UUID(PRODUCT), None))

    # Four quick balances of one stock row, before Bitrix24 knows its warehouse or product.
    quantities = [5, 7, 4, 9]
    for quantity in quantities:
        resp = stack.post_onec("ТоварыНаСкладах", balance(quantity))
        assert resp.status_code == 202, resp.text
        assert resp.json()["id"] == row
    stack.wait_sql("SELECT quantity FROM stock WHERE id = %s", lambda r: r == [(9,)], 40, row)
    # Movements are refused with their code, not taken for balances.
    resp = stack.post_onec(
        "AccumulationRegister_ТоварыНаСкладах",
        {
            "Recorder": str(uuid.uuid4()),
            "RecordSet": [
                {
                    "LineNumber": "1",
                    "Period": "2026-12-07T10:00:00",
                    "RecordType": "Expense",
                    "Склад_Key": WAREHOUSE,
                    "Номенклатура_Key": PRODUCT,
                    "ВНаличии": 1,
                }
            ],
        },
    )
    assert resp.status_code == 422
    assert {d.get("code") for d in resp.json()["error"]["details"]} == {
        "register_movements_refused"
    }

    # The warehouse and the product arrive: the waiting balance follows them, once.
    assert (
        stack.post_onec(
            "Склады",
            {
                "Ref_Key": WAREHOUSE,
                "DataVersion": "AAAAAQ==",
                "DeletionMark": False,
                "Code": "К-01",
                "Description": "Курьер Курьеров",
                "Parent_Key": ZERO,
                "IsFolder": False,
                "Адрес": "в пути",
            },
        ).status_code
        == 202
    )
    assert stack.post_product(onec_product(PRODUCT, Description="Чай")).status_code == 202
    (b24_product,) = wait_for(
        stack, "product in Bitrix24", lambda: stack.emulator_products() or None
    )
    (store,) = wait_for(
        stack,
        "store in Bitrix24",
        lambda: (
            stack.rest(
                "catalog.store.list", {"select": ["id", "xmlId"], "filter": {"xmlId": WAREHOUSE}}
            )["stores"]
            or None
        ),
    )
    store_id, product_id = int(store["id"]), int(b24_product["id"])
    wait_for(stack, "balance in the store", lambda: store_amount(stack, store_id, product_id) == 9)
    changes = stack.sql("SELECT count(*) FROM outbox WHERE entity = 'stock'")[0][0]
    conducted = stack.emulator_calls("catalog.document.conduct")
    assert changes == len(quantities)
    assert len(conducted) == 1 < changes  # coalesced: one write of the final value
    (element,) = stack.emulator_calls("catalog.document.element.add")
    assert element["params"]["fields"]["amount"] in (9, 9.0, "9", "9.0")

    # The courier takes an instant order of 2: reserved from their walking warehouse.
    deal = int(
        stack.rest(
            "crm.deal.add",
            {
                "fields": {
                    "TITLE": "Продажа у клиента",
                    "CATEGORY_ID": INSTANT,
                    "STAGE_ID": f"C{INSTANT}:NEW",
                    "OPPORTUNITY": "700.00",
                    "CURRENCY_ID": "RUB",
                    "ASSIGNED_BY_ID": COURIER,
                }
            },
        )
    )
    assert (
        stack.rest(
            "crm.deal.productrows.set",
            {"id": deal, "rows": [{"PRODUCT_ID": product_id, "PRICE": 350, "QUANTITY": 2}]},
        )
        is True
    )
    stack.post_event("ONCRMDEALADD", deal)
    stack.wait_sql(
        "SELECT quantity, order_reserve, order_reserve_at > as_of FROM stock WHERE id = %s",
        lambda r: r == [(9, 2, True)],
        60,
        row,
    )
    # The courier renames the deal: a new version of the order, reserved again — not twice.
    assert stack.rest("crm.deal.update", {"id": deal, "fields": {"TITLE": "Продажа 2"}}) is True
    stack.post_event("ONCRMDEALUPDATE", deal)
    stack.wait_sql(
        "SELECT count(*) FROM source_version WHERE entity = 'stock' AND source_id = %s "
        "AND version LIKE 'r:%%'",
        lambda r: r[0][0] >= 2,
        60,
        row,
    )
    assert stack.sql("SELECT title FROM instant_order") == [("Продажа 2",)]
    assert [(q,) for _, q in stack.sql("SELECT order_id, quantity FROM stock_reservation")] == [
        (2,)
    ]
    assert stack.sql("SELECT order_reserve FROM stock WHERE id = %s", row) == [(2,)]

    # 1С answers with its balance as of a later moment (the order is in it): the
    # reservation is void and the new balance reaches the store.
    assert stack.post_onec("ТоварыНаСкладах", balance(7)).status_code == 202
    stack.wait_sql(
        "SELECT quantity, as_of >= order_reserve_at FROM stock WHERE id = %s",
        lambda r: r == [(7, True)],
        40,
        row,
    )
    wait_for(
        stack, "new balance in the store", lambda: store_amount(stack, store_id, product_id) == 7
    )
    assert len(stack.emulator_calls("catalog.document.conduct")) == 2

    # The courier loses the deal: its reservation is released.
    assert (
        stack.rest(
            "crm.deal.update",
            {"id": deal, "fields": {"STAGE_ID": f"C{INSTANT}:LOSE", "CLOSED": "Y"}},
        )
        is True
    )
    stack.post_event("ONCRMDEALUPDATE", deal)
    stack.wait_sql(
        "SELECT order_reserve, order_reserve_at FROM stock WHERE id = %s",
        lambda r: r == [(0, None)],
        60,
        row,
    )
    assert stack.sql("SELECT count(*) FROM stock_reservation") == [(0,)]
