"""Instant orders and returns (flow 3): the pure mappings of a courier's deal to the 1С
documents, checked against the contract models the 1С emulator validates with, and the
answer / status mappings back; and the reading of a deal's goods against the Bitrix24
emulator (ASGI) with the product crosswalk on real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from connectors.onec.client import DocumentRef, WriteResult
from devstack.emulators.bitrix24 import create_app
from devstack.emulators.onec.contract import InstantOrder, Return, problems
from mmstream.settings import Bitrix24Settings, Settings
from stages.egress.actions import Targets
from stages.egress.courier_documents import (
    InstantOrderToOneC,
    currency,
    deal_id,
    goods_lines,
    instant_order_body,
    money,
    ready_for_onec,
    result_value,
    return_body,
    status_fields,
)
from stages.egress.delivery import Crosswalk, DependencyPending

MSK = ZoneInfo("Europe/Moscow")
ORDER_ID = "0f6b1d2c-8a3e-4c5f-9b7a-1e2d3c4b5a69"
RETURN_ID = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
CUSTOMER = "87fa6cc2-e901-11ea-8591-000c29b45b09"
SHIPMENT = "8b9660f6-6332-11ec-ad72-000c29b45b09"
PRODUCT = "5d1b6a3e-2f4c-11ef-8a6b-000c29b45b09"
OTHER_PRODUCT = "6e2c7b4f-3a5d-11ef-8a6b-000c29b45b09"


def contract_problems(model, body: dict) -> list[dict]:
    """What the 1С emulator would answer in ``details.errors`` (empty: accepted)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return problems(exc)
    return []


def one_line() -> list[dict]:
    return goods_lines([{"PRODUCT_ID": 7, "PRICE": 250.0, "QUANTITY": 2.0}], {7: PRODUCT})


def instant_order(**fields) -> dict:
    return {
        "id": ORDER_ID,
        "source": "bitrix24",
        "stage": "C3:WON",
        "status": "new",
        "external_ids": {"bitrix24": "deal:42"},
        "currency": "RUB",
        "amount": "500.00",
        "created_at": "2024-06-03T08:00:00+00:00",
        "closed_at": "2024-06-03T09:30:00+00:00",
        **fields,
    }


def courier_return(**fields) -> dict:
    return {
        "id": RETURN_ID,
        "source": "bitrix24",
        "courier_stage": "C3:WON",
        "status": "new",
        "external_ids": {"bitrix24": "deal:43"},
        "courier_currency": "RUB",
        "reported_at": "2024-06-03T21:10:05+00:00",
        **fields,
    }


# -- deal and readiness -------------------------------------------------------------------


@pytest.mark.parametrize(
    "external,expected",
    [
        ({"bitrix24": "deal:42"}, 42),
        ({"bitrix24": "item:140:42"}, None),
        ({"bitrix24": "deal:"}, None),
        ({"bitrix24": "deal:x"}, None),
        ({"onec": CUSTOMER}, None),
        ({}, None),
        (None, None),
    ],
)
def test_deal_id_is_read_only_from_a_deal_record_key(external, expected):
    assert deal_id({"external_ids": external}) == expected


def test_a_won_deal_is_ready_for_1c():
    assert ready_for_onec(instant_order(), "stage") is True
    assert ready_for_onec({"stage": "WON"}, "stage") is True  # status defaults to new


@pytest.mark.parametrize(
    "fields",
    [
        {"stage": "C3:NEW"},
        {"stage": "C3:LOSE"},
        {"stage": ""},
        {"status": "recorded"},
        {"status": "cancelled"},
        {"deleted": True},
    ],
)
def test_an_open_lost_recorded_or_deleted_deal_is_not_sent_to_1c(fields):
    assert ready_for_onec(instant_order(**fields), "stage") is False


def test_readiness_reads_the_stage_field_it_is_told():
    # Returns keep the courier's stage apart from 1С's own fields.
    assert ready_for_onec(courier_return(), "courier_stage") is True
    assert ready_for_onec(courier_return(), "stage") is False


# -- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("rub", "RUB"),
        (" usd ", "USD"),
        ("EUR", "EUR"),
        (None, "RUB"),
        ("", "RUB"),
        ("РУБ", "RUB"),
        ("RU", "RUB"),
        ("R1B", "RUB"),
        ("RUBL", "RUB"),
    ],
)
def test_currency_is_an_iso_code_or_the_default(value, expected):
    assert currency(value) == expected


def test_currency_default_can_be_chosen():
    assert currency(None, default="KZT") == "KZT"


@pytest.mark.parametrize(
    "value,expected",
    [
        ("1500.50", 1500.5),
        (0, 0.0),
        (12, 12.0),
        (None, None),
        ("", None),
        ("abc", None),
        ("-1", None),
    ],
)
def test_money_is_a_non_negative_number_or_none(value, expected):
    assert money(value) == expected


# -- goods --------------------------------------------------------------------------------


def test_goods_lines_map_products_and_compute_the_amount():
    rows = [
        {"PRODUCT_ID": "7", "PRICE": "99.90", "QUANTITY": "3"},
        {"PRODUCT_ID": 8, "PRICE": 10.0, "QUANTITY": 0.5},
    ]
    assert goods_lines(rows, {7: PRODUCT, 8: OTHER_PRODUCT}) == [
        {"product_id": PRODUCT, "quantity": 3.0, "price": 99.9, "amount": 299.7},
        {"product_id": OTHER_PRODUCT, "quantity": 0.5, "price": 10.0, "amount": 5.0},
    ]


def test_goods_lines_drop_placeholder_rows_without_quantity():
    rows = [
        {"PRODUCT_ID": 7, "PRICE": 1.0, "QUANTITY": 0.0},
        {"PRODUCT_ID": 7, "PRICE": 1.0},
        {"PRODUCT_ID": 7, "PRICE": 1.0, "QUANTITY": -1},
        {"PRODUCT_ID": 8, "PRICE": 5.0, "QUANTITY": 1.0},
    ]
    assert goods_lines(rows, {7: PRODUCT, 8: OTHER_PRODUCT}) == [
        {"product_id": OTHER_PRODUCT, "quantity": 1.0, "price": 5.0, "amount": 5.0}
    ]


def test_goods_lines_price_defaults_to_zero():
    assert goods_lines([{"PRODUCT_ID": 7, "QUANTITY": 2}], {7: PRODUCT})[0]["amount"] == 0.0


# -- the instant order --------------------------------------------------------------------


def test_instant_order_body_is_keyed_by_the_canonical_id_and_dated_in_1c_wall_clock():
    body = instant_order_body(
        instant_order(),
        customer=CUSTOMER,
        lines=one_line(),
        document_type="shipment",
        tz=MSK,
        post=True,
    )
    assert body == {
        "source_id": ORDER_ID,
        "ref_key": ORDER_ID,
        "document_type": "shipment",
        "date": "2024-06-03T12:30:00",
        "counterparty_id": CUSTOMER,
        "currency": "RUB",
        "lines": one_line(),
        "post": True,
        "amount": 500.0,
    }


def test_instant_order_date_falls_back_to_created_at_then_now():
    created = instant_order_body(
        instant_order(closed_at=None),
        customer=CUSTOMER,
        lines=one_line(),
        document_type="order",
        tz=MSK,
        post=False,
    )
    assert created["date"] == "2024-06-03T11:00:00"
    now = instant_order_body(
        instant_order(closed_at=None, created_at=None),
        customer=CUSTOMER,
        lines=one_line(),
        document_type="order",
        tz=MSK,
        post=False,
        now=datetime(2024, 1, 1, 21, 0, tzinfo=UTC),
    )
    assert now["date"] == "2024-01-02T00:00:00"


def test_instant_order_optional_fields_only_when_present():
    bare = instant_order_body(
        instant_order(amount=None, currency=""),
        customer=CUSTOMER,
        lines=one_line(),
        document_type="order",
        tz=MSK,
        post=False,
    )
    assert "amount" not in bare and "delivery_address" not in bare and "comment" not in bare
    assert bare["currency"] == "RUB"
    full = instant_order_body(
        instant_order(delivery_address="ул. Ленина, 5", comment="к" * 2000),
        customer=CUSTOMER,
        lines=one_line(),
        document_type="order",
        tz=MSK,
        post=False,
    )
    assert full["delivery_address"] == "ул. Ленина, 5" and len(full["comment"]) == 1024


def test_instant_order_body_passes_the_1c_contract():
    body = instant_order_body(
        instant_order(delivery_address="ул. Ленина, 5", comment="срочно"),
        customer=CUSTOMER,
        lines=one_line(),
        document_type="order",
        tz=MSK,
        post=False,
    )
    assert contract_problems(InstantOrder, body) == []


# -- the return ---------------------------------------------------------------------------


def test_return_body_is_keyed_by_the_canonical_id_and_dated_when_reported():
    body = return_body(
        courier_return(), customer=CUSTOMER, lines=one_line(), shipment=None, tz=MSK, post=False
    )
    assert body == {
        "source_id": RETURN_ID,
        "ref_key": RETURN_ID,
        "date": "2024-06-04T00:10:05",
        "counterparty_id": CUSTOMER,
        "currency": "RUB",
        "lines": one_line(),
        "post": False,
    }


def test_return_optional_fields_only_when_present():
    body = return_body(
        courier_return(courier_amount="500", courier_comment="брак", courier_currency="eur"),
        customer=CUSTOMER,
        lines=one_line(),
        shipment=SHIPMENT,
        tz=MSK,
        post=True,
    )
    assert body["shipment_id"] == SHIPMENT and body["amount"] == 500.0
    assert body["comment"] == "брак" and body["currency"] == "EUR"
    bare = return_body(
        courier_return(courier_amount="-3"),
        customer=CUSTOMER,
        lines=one_line(),
        shipment="",
        tz=MSK,
        post=True,
    )
    assert "shipment_id" not in bare and "amount" not in bare and "comment" not in bare


def test_return_without_reported_at_is_dated_now():
    body = return_body(
        courier_return(reported_at=None),
        customer=CUSTOMER,
        lines=one_line(),
        shipment=None,
        tz=MSK,
        post=False,
        now=datetime(2024, 6, 3, 6, 0, 0, 500000, tzinfo=UTC),
    )
    assert body["date"] == "2024-06-03T09:00:00"


def test_return_body_passes_the_1c_contract():
    body = return_body(
        courier_return(courier_amount="500", courier_comment="брак"),
        customer=CUSTOMER,
        lines=one_line(),
        shipment=SHIPMENT,
        tz=MSK,
        post=True,
    )
    assert contract_problems(Return, body) == []


def test_the_contract_check_does_see_a_body_without_lines():
    # Guards the two tests above: the contract really refuses a document without goods.
    body = return_body(
        courier_return(), customer=CUSTOMER, lines=[], shipment=None, tz=MSK, post=False
    )
    assert [p["field"] for p in contract_problems(Return, body)] == ["lines"]


# -- answers and status -------------------------------------------------------------------


def test_result_value_carries_the_answer_for_raw_onec_result():
    result = WriteResult(
        idempotency_key=f"instant_order:{ORDER_ID}",
        operation="instant_order",
        document=DocumentRef(
            type="Document_ЗаказКлиента",
            ref_key=ORDER_ID,
            number="ЗК-000777",
            date="2024-06-03T12:30:00",
            posted=True,
        ),
        created_at="2024-06-03T12:30:01",
        replayed=False,
        raw={},
    )
    assert result_value("instant_order", ORDER_ID, result) == {
        "entity": "instant_order",
        "id": ORDER_ID,
        "status": "recorded",
        "idempotency_key": f"instant_order:{ORDER_ID}",
        "operation": "instant_order",
        "answered_at": "2024-06-03T12:30:01",
        "document": {
            "type": "Document_ЗаказКлиента",
            "ref_key": ORDER_ID,
            "number": "ЗК-000777",
            "date": "2024-06-03T12:30:00",
            "posted": True,
        },
    }


def test_status_fields_carry_the_number_only_when_1c_gave_one():
    assert status_fields(
        "recorded", "ЗК-000777", status_field="UF_STATUS", document_field="UF_DOC"
    ) == {"UF_STATUS": "recorded", "UF_DOC": "ЗК-000777"}
    assert status_fields("failed", "", status_field="UF_STATUS", document_field="UF_DOC") == {
        "UF_STATUS": "failed"
    }


# -- the deal's goods (emulator + crosswalk on PostgreSQL) --------------------------------

HOOK = "/rest/1/courierdocs/"
BASE = "http://portal.test"


def with_goods(db_url, rows: list[dict], links: dict[int, str]):
    """``_lines`` of a fresh deal holding ``rows``, with Bitrix24 products ``links`` mapped to
    1С GUIDs in the crosswalk: the lines, or the exception it raised."""
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        portal = Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000)
        client = Bitrix24Client(portal, transport=httpx.ASGITransport(app=app))
        engine = create_async_engine(db_url)
        xwalk = Crosswalk(engine)
        action = InstantOrderToOneC(
            Targets(settings=Settings(bitrix24=portal), bitrix24=client, onec=None, producer=None)
        )
        try:
            deal = await client.call("crm.deal.add", {"fields": {"TITLE": "Мгновенный заказ"}})
            await client.call("crm.deal.productrows.set", {"id": deal, "rows": rows})
            for number, guid in links.items():
                await xwalk.link("product", "bitrix24", guid, str(number))
            try:
                return await action._lines(deal, xwalk)
            except DependencyPending as exc:
                return exc
        finally:
            await client.aclose()
            await engine.dispose()

    return asyncio.run(main())


def test_the_deal_rows_become_goods_lines_of_1c_products(db_url):
    lines = with_goods(
        db_url,
        [
            {"PRODUCT_ID": 7, "PRICE": 250, "QUANTITY": 2},
            {"PRODUCT_ID": 8, "PRICE": "10.5", "QUANTITY": "3"},
            {"PRODUCT_ID": 7, "PRICE": 250, "QUANTITY": 1},
        ],
        {7: PRODUCT, 8: OTHER_PRODUCT},
    )
    assert lines == [
        {"product_id": PRODUCT, "quantity": 2.0, "price": 250.0, "amount": 500.0},
        {"product_id": OTHER_PRODUCT, "quantity": 3.0, "price": 10.5, "amount": 31.5},
        {"product_id": PRODUCT, "quantity": 1.0, "price": 250.0, "amount": 250.0},
    ]


def test_a_product_not_from_1c_waits_for_the_courier_to_pick_one(db_url):
    pending = with_goods(
        db_url,
        [
            {"PRODUCT_ID": 7, "PRICE": 1, "QUANTITY": 1},
            {"PRODUCT_ID": 9, "PRODUCT_NAME": "Своё", "QUANTITY": 1},
        ],
        {7: PRODUCT},
    )
    assert isinstance(pending, DependencyPending)
    assert "product 9 (Своё)" in str(pending)


def test_a_placeholder_row_of_an_unknown_product_does_not_hold_the_order(db_url):
    lines = with_goods(
        db_url,
        [
            {"PRODUCT_ID": 7, "PRICE": 5, "QUANTITY": 1},
            {"PRODUCT_ID": 9, "PRICE": 1, "QUANTITY": "0"},
        ],
        {7: PRODUCT},
    )
    assert lines == [{"product_id": PRODUCT, "quantity": 1.0, "price": 5.0, "amount": 5.0}]
