"""Store balances and warehouse documents: ``catalog.storeproduct.*`` and ``catalog.document.*``.

As the portal documents them (dev.1c-bitrix.ru/rest_help/catalog/storeproduct and
catalogdocument): the balances of products on stores are **read-only** over REST
(``catalog.storeproduct.get`` / ``list``; there is no add/update, so those names answer
``ERROR_METHOD_NOT_FOUND`` like any unknown method). A balance changes only when a
warehouse document is *conducted*: ``catalog.document.add`` (``docType`` A arrival, S store
adjustment, M moving, R return, D deduct/write-off), ``catalog.document.element.add`` (its
goods: ``docId``, ``elementId``, ``amount``, ``storeTo`` / ``storeFrom``) and
``catalog.document.conduct``. Conducting is all or nothing: a deduct below zero, a missing
store or product refuses the whole document and changes no balance. A conducted document
cannot be changed or conducted again; ``catalog.document.mode.status`` answers whether
inventory management is on (it is, in the emulator).

Answers are the catalog family's camelCase with numeric ids: ``{"document": {...}}``,
``{"documentElement": {...}}``, ``{"storeProducts": [...]}`` paged by 50, errors as
``{"error": <code>, "error_description": <text>}`` with HTTP 400.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from devstack.emulators.bitrix24.envelope import ApiError, iso, missing_param
from devstack.emulators.bitrix24.query import (
    as_int,
    as_list,
    matches,
    order_param,
    paginate,
    sort_rows,
)

#: Document types: (needs storeTo, needs storeFrom).
DOC_TYPES = {
    "A": (True, False),
    "S": (True, False),
    "M": (True, True),
    "R": (True, False),
    "D": (False, True),
}
#: Types whose goods come with a purchase price and currency.
_PRICED = ("A", "S")


class Inventory:
    """Store balances and warehouse documents of one portal.

    ``store_exists`` / ``product_exists`` tell whether a store or product id is in the
    portal (they are kept by the directory and the product store)."""

    def __init__(
        self,
        store_exists: Callable[[int], bool],
        product_exists: Callable[[int], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store_exists = store_exists
        self._product_exists = product_exists
        self._clock = clock
        self.balances: dict[tuple[int, int], dict[str, Any]] = {}
        self.documents: dict[int, dict[str, Any]] = {}
        self.elements: dict[int, dict[str, Any]] = {}
        self._next = {"balance": 1, "document": 1, "element": 1}

    def _id(self, kind: str) -> int:
        ident = self._next[kind]
        self._next[kind] += 1
        return ident

    def balance(self, store: int, product: int) -> dict[str, Any]:
        """The balance row of a product on a store (created at 0 on first use)."""
        key = (store, product)
        if key not in self.balances:
            self.balances[key] = {
                "id": self._id("balance"),
                "storeId": store,
                "productId": product,
                "amount": 0.0,
                "quantityReserved": 0.0,
            }
        return self.balances[key]

    def add_document(self, fields: dict[str, Any]) -> dict[str, Any]:
        doc_type = str(fields.get("docType") or "")
        if not doc_type:
            raise ApiError(400, 0, "Required fields: docType")
        if doc_type not in DOC_TYPES:
            raise ApiError(400, "ERROR_DOCUMENT_TYPE", f"Invalid document type {doc_type!r}")
        if doc_type in _PRICED and not fields.get("currency"):
            raise ApiError(400, 0, "Required fields: currency")
        now = iso(self._clock())
        doc = {
            "id": self._id("document"),
            "docType": doc_type,
            "title": str(fields.get("title") or ""),
            "currency": fields.get("currency"),
            "responsibleId": as_int(fields.get("responsibleId")) or 1,
            "commentary": str(fields.get("commentary") or ""),
            "status": "N",
            "dateCreate": now,
            "dateModify": now,
            "dateStatus": None,
            "total": 0.0,
        }
        self.documents[doc["id"]] = doc
        return dict(doc)

    def add_element(self, fields: dict[str, Any]) -> dict[str, Any]:
        missing = [f for f in ("docId", "elementId", "amount") if fields.get(f) in (None, "")]
        if missing:
            raise ApiError(400, 0, f"Required fields: {', '.join(missing)}")
        doc = self.documents.get(as_int(fields.get("docId")) or 0)
        if doc is None:
            raise ApiError(400, "ERROR_DOCUMENT_NOT_EXISTS", "Document does not exist.")
        if doc["status"] == "Y":
            raise ApiError(400, "ERROR_DOCUMENT_STATUS", "Conducted document cannot be changed.")
        amount = _number(fields.get("amount"), "amount")
        if amount <= 0:
            raise ApiError(400, 0, "Amount must be greater than zero.")
        to_needed, from_needed = DOC_TYPES[doc["docType"]]
        store_to, store_from = (
            as_int(fields.get("storeTo")) or 0,
            as_int(fields.get("storeFrom")) or 0,
        )
        if to_needed and not store_to:
            raise ApiError(400, 0, "Required fields: storeTo")
        if from_needed and not store_from:
            raise ApiError(400, 0, "Required fields: storeFrom")
        element = {
            "id": self._id("element"),
            "docId": doc["id"],
            "elementId": as_int(fields["elementId"]),
            "amount": float(amount),
            "storeTo": store_to,
            "storeFrom": store_from,
            "purchasingPrice": float(
                _number(fields.get("purchasingPrice") or 0, "purchasingPrice")
            ),
        }
        self.elements[element["id"]] = element
        return dict(element)

    def conduct(self, ident: int) -> bool:
        doc = self.documents.get(ident)
        if doc is None:
            raise ApiError(400, "ERROR_DOCUMENT_NOT_EXISTS", "Document does not exist.")
        if doc["status"] == "Y":
            raise ApiError(400, "ERROR_DOCUMENT_STATUS", "Document is already conducted.")
        goods = [e for e in self.elements.values() if e["docId"] == ident]
        if not goods:
            raise ApiError(400, "ERROR_DOCUMENT_EMPTY", "Document has no products.")
        # Check everything first: a refused document changes no balance.
        deltas: dict[tuple[int, int], Decimal] = {}
        for element in goods:
            product = element["elementId"]
            if not self._product_exists(product):
                raise ApiError(400, "ERROR_PRODUCT_NOT_EXISTS", f"Product {product} is not exists")
            amount = Decimal(str(element["amount"]))
            for store, sign in ((element["storeTo"], 1), (element["storeFrom"], -1)):
                if not store:
                    continue
                if not self._store_exists(store):
                    raise ApiError(400, "ERROR_STORE_NOT_EXISTS", f"Store {store} is not exists")
                deltas[(store, product)] = deltas.get((store, product), Decimal(0)) + sign * amount
        for (store, product), delta in deltas.items():
            have = Decimal(str(self.balances.get((store, product), {}).get("amount", 0)))
            if have + delta < 0:
                raise ApiError(
                    400,
                    "ERROR_NOT_ENOUGH_PRODUCTS",
                    f"Insufficient quantity of product {product} on store {store}",
                )
        for (store, product), delta in deltas.items():
            row = self.balance(store, product)
            row["amount"] = float(Decimal(str(row["amount"])) + delta)
        now = iso(self._clock())
        doc.update(status="Y", dateStatus=now, dateModify=now)
        return True


def _number(value: Any, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ApiError(400, 0, f"Invalid value of {field}") from None


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise missing_param("fields")
    return fields


def _id_param(params: dict[str, Any]) -> int:
    if params.get("id") in (None, ""):
        raise missing_param("id")
    return as_int(params.get("id")) or 0


def _listing(rows: list[dict[str, Any]], params: dict[str, Any], many: str):
    flt = params.get("filter") or {}
    if not isinstance(flt, dict):
        raise ApiError(400, 0, "Incorrect filter format")
    rows = sort_rows(
        [r for r in rows if matches(r, flt)], order_param(params.get("order")) or {"id": "ASC"}
    )
    page, total, nxt = paginate(rows, params.get("start"))
    select = [str(s) for s in as_list(params.get("select") or [])]
    if select and "*" not in select:
        page = [{k: r.get(k) for k in ["id", *select] if k in r} for r in page]
    else:
        page = [dict(r) for r in page]
    return {many: page}, total, nxt


def _storeproduct_list(inv: Inventory, params: dict[str, Any]):
    return _listing(list(inv.balances.values()), params, "storeProducts")


def _storeproduct_get(inv: Inventory, params: dict[str, Any]):
    ident = _id_param(params)
    for row in inv.balances.values():
        if row["id"] == ident:
            return {"storeProduct": dict(row)}, None, None
    raise ApiError(400, 0, "Entity is not exists")


def _document_add(inv: Inventory, params: dict[str, Any]):
    return {"document": inv.add_document(_fields(params))}, None, None


def _document_list(inv: Inventory, params: dict[str, Any]):
    return _listing(list(inv.documents.values()), params, "documents")


def _element_add(inv: Inventory, params: dict[str, Any]):
    return {"documentElement": inv.add_element(_fields(params))}, None, None


def _element_list(inv: Inventory, params: dict[str, Any]):
    return _listing(list(inv.elements.values()), params, "documentElements")


def _conduct(inv: Inventory, params: dict[str, Any]):
    return inv.conduct(_id_param(params)), None, None


def _mode_status(inv: Inventory, params: dict[str, Any]):
    return True, None, None


#: A REST method over the inventory: params -> (result, total, next).
InventoryMethod = Callable[[Inventory, dict[str, Any]], tuple[Any, Any, Any]]

# Matched lower-cased, as the portal matches method names.
METHODS: dict[str, InventoryMethod] = {
    "catalog.storeproduct.list": _storeproduct_list,
    "catalog.storeproduct.get": _storeproduct_get,
    "catalog.document.add": _document_add,
    "catalog.document.list": _document_list,
    "catalog.document.element.add": _element_add,
    "catalog.document.element.list": _element_list,
    "catalog.document.conduct": _conduct,
    "catalog.document.mode.status": _mode_status,
}
