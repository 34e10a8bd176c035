"""``catalog.product.*``: camelCase fields, numeric ids, errors with codes."""

from __future__ import annotations

from typing import Any

from devstack.emulators.bitrix24.envelope import ApiError, missing_param
from devstack.emulators.bitrix24.query import as_int, as_list, order_param, paginate, split_op
from devstack.emulators.bitrix24.store import Method, ProductStore


def _product_or_error(store: ProductStore, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("id") in (None, ""):
        raise missing_param("id")
    product = store.products.get(as_int(params.get("id")) or 0)
    if product is None:
        # As the portal answers (catalog.product.update docs): code 0, the controller's text.
        raise ApiError(400, 0, "product does not exist.")
    return product


def _add(store: ProductStore, params: dict[str, Any]):
    fields = params.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise missing_param("fields")
    missing = [f for f in ("iblockId", "name") if fields.get(f) in (None, "")]
    if missing:
        raise ApiError(400, 0, f"Required fields: {', '.join(missing)}")
    return {"element": dict(store.add(fields))}, None, None


def _update(store: ProductStore, params: dict[str, Any]):
    product = _product_or_error(store, params)
    fields = params.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise missing_param("fields")
    return {"element": dict(store.update(product["id"], fields))}, None, None


def _get(store: ProductStore, params: dict[str, Any]):
    return {"product": dict(_product_or_error(store, params))}, None, None


def _delete(store: ProductStore, params: dict[str, Any]):
    product = _product_or_error(store, params)
    del store.products[product["id"]]
    return True, None, None


def _list(store: ProductStore, params: dict[str, Any]):
    if "select" not in params:
        raise missing_param("select")
    if "filter" not in params:
        raise missing_param("filter")
    select = as_list(params["select"])
    missing = [f for f in ("id", "iblockId") if f not in select]
    if missing:
        raise ApiError(400, 0, f"Required select fields: {', '.join(missing)}")
    flt = params["filter"]
    if not isinstance(flt, dict):
        raise ApiError(400, 0, "Incorrect filter format")
    if not any(split_op(k)[1] == "iblockId" for k in flt):
        raise ApiError(400, 0, "Required filter fields: iblockId")
    rows = store.find(flt, order_param(params.get("order")))
    page, total, nxt = paginate(rows, params.get("start"))
    everything = "*" in select
    products = [{k: v for k, v in p.items() if everything or k in select} for p in page]
    return {"products": products}, total, nxt


METHODS: dict[str, Method] = {
    "catalog.product.add": _add,
    "catalog.product.update": _update,
    "catalog.product.get": _get,
    "catalog.product.list": _list,
    "catalog.product.delete": _delete,
}
