"""The emulated portal's products, kept in canonical (catalog camelCase) form."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from devstack.emulators.bitrix24.envelope import iso
from devstack.emulators.bitrix24.query import as_int, matches, sort_rows

_INT_FIELDS = frozenset(
    {
        "id",
        "iblockId",
        "iblockSectionId",
        "sort",
        "measure",
        "vatId",
        "createdBy",
        "modifiedBy",
        "type",
    }
)


class ProductStore:
    """Products in canonical (catalog camelCase) form, shared by catalog.* and crm.*."""

    def __init__(self, default_iblock_id: int) -> None:
        self.default_iblock_id = default_iblock_id
        self.products: dict[int, dict[str, Any]] = {}
        self._next_id = 1

    def add(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a product from camelCase ``fields``; the stored product."""
        now = iso(time.time())
        product_id = self._next_id
        self._next_id += 1
        product: dict[str, Any] = {
            "id": product_id,
            "iblockId": self.default_iblock_id,
            "name": "",
            "active": "Y",
            "available": "Y",
            "code": None,
            "xmlId": None,
            "sort": 500,
            "type": 1,
            "iblockSectionId": None,
            "detailText": None,
            "detailTextType": "text",
            "createdBy": 1,
            "modifiedBy": 1,
            "dateCreate": now,
            "timestampX": now,
        }
        product.update({k: v for k, v in _coerce(fields).items() if k != "id"})
        # Like the portal: an element saved without an external code gets its id as one.
        if product.get("xmlId") in (None, ""):
            product["xmlId"] = str(product_id)
        self.products[product_id] = product
        return product

    def update(self, product_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Overwrite camelCase ``fields`` of an existing product; the stored product."""
        product = self.products[product_id]
        product.update({k: v for k, v in _coerce(fields).items() if k != "id"})
        product["timestampX"] = iso(time.time())
        return product

    def find(self, flt: dict[str, Any], order: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Products passing ``flt``, sorted by ``order`` (default: id ascending)."""
        rows = [p for p in self.products.values() if matches(p, flt)]
        return sort_rows(rows, order or {"id": "ASC"})

    def put(self, product_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite product ``product_id`` (admin seeding); the stored product.

        ``timestampX`` becomes now unless ``fields`` name it.
        """
        if product_id not in self.products:
            created = self.add({})
            del self.products[created["id"]]
            self._next_id = max(self._next_id - 1, product_id + 1)
            self.products[product_id] = {**created, "id": product_id, "xmlId": str(product_id)}
        product = self.update(product_id, fields)
        if "timestampX" in fields:
            product["timestampX"] = fields["timestampX"]
        return product


#: A REST method over the store: params -> (result, total, next).
Method = Callable[[ProductStore, dict[str, Any]], tuple[Any, Any, Any]]


def _coerce(fields: dict[str, Any]) -> dict[str, Any]:
    # Form-encoded calls send every value as a string; the portal stores ids as numbers.
    out = dict(fields)
    for key in _INT_FIELDS & out.keys():
        as_number = as_int(out[key])
        if as_number is not None:
            out[key] = as_number
    return out
