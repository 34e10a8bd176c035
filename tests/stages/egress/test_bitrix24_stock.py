"""Stock egress decisions (the document that moves a store balance, coalescing, the
courier's walking warehouse), the walking-warehouse settings, and the emulator's
``catalog.storeproduct.*`` / ``catalog.document.*`` as the portal answers them."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from pydantic import ValidationError

from devstack.emulators.bitrix24.portal import Portal
from mmstream.models.base import derived_id
from mmstream.settings import StockSettings
from stages.egress.bitrix24_stock import (
    BalanceWrite,
    balance_write,
    is_latest,
    target_quantity,
    walking_warehouse,
)

W1, W2 = "0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("0", "5", BalanceWrite("S", Decimal(5), "storeTo")),
        ("7", "5", BalanceWrite("D", Decimal(2), "storeFrom")),
        ("5", "5", None),
        ("3", "-2", BalanceWrite("D", Decimal(3), "storeFrom")),  # no store below zero
        ("0", "-2", None),
        ("1.5", "2.25", BalanceWrite("S", Decimal("0.75"), "storeTo")),
    ],
)
def test_the_document_that_moves_a_balance(current, target, expected):
    assert balance_write(Decimal(current), Decimal(target)) == expected


def test_the_balance_to_write():
    assert target_quantity({"quantity": "4.5"}) == Decimal("4.5")
    assert target_quantity({"quantity": "4", "deleted": True}) == 0  # vanished from 1С: none left
    assert target_quantity({"quantity": None}) is None  # only a reservation so far
    with pytest.raises(ValueError, match="quantity"):
        target_quantity({"quantity": "много"})


def test_only_the_latest_version_is_written():
    assert is_latest("v3", "v3")
    assert not is_latest("v1", "v3")  # v3 is stored and queued behind: v1 is coalesced into it
    assert is_latest("v1", None)


def test_the_couriers_walking_warehouse():
    walking = {W1: 7, W2: 9}
    bitrix_user = str(derived_id("employee", "bitrix24", "user:9"))
    assert walking_warehouse(bitrix_user, walking, None) == W2
    # A 1С employee the crosswalk maps to user 7.
    assert walking_warehouse("5f0c1a7e-0000-4000-8000-000000000001", walking, "user:7") == W1
    assert walking_warehouse("5f0c1a7e-0000-4000-8000-000000000001", walking, "user:8") is None
    assert walking_warehouse(None, walking, None) is None


def test_walking_warehouse_settings():
    settings = StockSettings(walking_warehouses={W1.upper(): 7})
    assert settings.walking_warehouses == {W1: 7}
    assert (settings.warehouse_of(7), settings.warehouse_of(8)) == (W1, None)
    with pytest.raises(ValidationError, match="more than one warehouse"):
        StockSettings(walking_warehouses={W1: 7, W2: 7})
    with pytest.raises(ValidationError, match="GUID"):
        StockSettings(walking_warehouses={"склад курьера": 7})
    with pytest.raises(ValidationError, match="user id"):
        StockSettings(walking_warehouses={W1: 0})


# -- the emulated portal ------------------------------------------------------------------


def call(portal: Portal, method: str, params: dict) -> tuple[int, dict]:
    return asyncio.run(portal.handle(method, params))


@pytest.fixture
def portal():
    p = Portal("rest/1/code", rate_per_s=1000, burst=1000, catalog_iblock_id=23)
    store = call(p, "catalog.store.add", {"fields": {"title": "Курьер", "address": "в пути"}})[1]
    product = call(p, "catalog.product.add", {"fields": {"iblockId": 23, "name": "Чай"}})[1]
    p.ids = (store["result"]["store"]["id"], product["result"]["element"]["id"])
    return p


def conduct(portal: Portal, doc_type: str, amount, **stores) -> tuple[int, dict]:
    store, product = portal.ids
    fields = {"docType": doc_type, **({"currency": "RUB"} if doc_type == "S" else {})}
    status, body = call(portal, "catalog.document.add", {"fields": fields})
    assert status == 200, body
    doc = body["result"]["document"]["id"]
    status, body = call(
        portal,
        "catalog.document.element.add",
        {
            "fields": {
                "docId": doc,
                "elementId": product,
                "amount": amount,
                **{k: store for k in stores},
            }
        },
    )
    assert status == 200, body
    return call(portal, "catalog.document.conduct", {"id": doc})


def balance(portal: Portal) -> list[tuple[int, int, float]]:
    store, product = portal.ids
    status, body = call(
        portal,
        "catalog.storeproduct.list",
        {
            "select": ["id", "storeId", "productId", "amount"],
            "filter": {"storeId": store, "productId": product},
        },
    )
    assert status == 200, body
    return [(r["storeId"], r["productId"], r["amount"]) for r in body["result"]["storeProducts"]]


def test_a_balance_moves_only_by_conducted_documents(portal):
    store, product = portal.ids
    assert balance(portal) == []
    # storeproduct is read-only over REST.
    status, body = call(portal, "catalog.storeproduct.update", {"id": 1, "fields": {"amount": 5}})
    assert (status, body["error"]) == (404, "ERROR_METHOD_NOT_FOUND")
    status, body = conduct(portal, "S", 5, storeTo=True)
    assert (status, body["result"]) == (200, True)
    assert balance(portal) == [(store, product, 5.0)]
    assert conduct(portal, "D", "2", storeFrom=True)[0] == 200
    assert balance(portal) == [(store, product, 3.0)]


def test_refusals_leave_the_balance_alone(portal):
    store, product = portal.ids
    conduct(portal, "S", 1, storeTo=True)
    status, body = conduct(portal, "D", 4, storeFrom=True)
    assert (status, body["error"]) == (400, "ERROR_NOT_ENOUGH_PRODUCTS")
    assert balance(portal) == [(store, product, 1.0)]
    # A conducted document cannot be conducted again.
    status, body = call(portal, "catalog.document.conduct", {"id": 1})
    assert (status, body["error"]) == (400, "ERROR_DOCUMENT_STATUS")
    status, body = call(portal, "catalog.document.add", {"fields": {"docType": "S"}})
    assert (status, body["error_description"]) == (400, "Required fields: currency")
    status, body = call(portal, "catalog.document.add", {"fields": {"docType": "X"}})
    assert (status, body["error"]) == (400, "ERROR_DOCUMENT_TYPE")
    status, body = call(
        portal,
        "catalog.document.element.add",
        {"fields": {"docId": 99, "elementId": product, "amount": 1, "storeTo": store}},
    )
    assert (status, body["error"]) == (400, "ERROR_DOCUMENT_NOT_EXISTS")
    doc = call(portal, "catalog.document.add", {"fields": {"docType": "D"}})[1]["result"][
        "document"
    ]["id"]
    status, body = call(
        portal,
        "catalog.document.element.add",
        {"fields": {"docId": doc, "elementId": product, "amount": 1, "storeTo": store}},
    )
    assert (status, body["error_description"]) == (400, "Required fields: storeFrom")
    status, body = call(portal, "catalog.document.conduct", {"id": doc})
    assert (status, body["error"]) == (400, "ERROR_DOCUMENT_EMPTY")
    assert balance(portal) == [(store, product, 1.0)]
