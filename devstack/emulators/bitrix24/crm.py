"""Legacy ``crm.product.*``: UPPER_CASE fields, string values, errors with an empty code.

It reads and writes the same products as ``catalog.product.*``, translating names.
"""

from __future__ import annotations

import re
from typing import Any

from devstack.emulators.bitrix24.envelope import legacy_error
from devstack.emulators.bitrix24.query import (
    as_int,
    as_list,
    order_param,
    paginate,
    renamed_filter,
    split_op,
)
from devstack.emulators.bitrix24.store import Method, ProductStore

# Legacy CRM names whose catalog counterpart is not the plain camelCase of the name.
_CRM_SPECIAL = {
    "CATALOG_ID": "iblockId",
    "SECTION_ID": "iblockSectionId",
    "DESCRIPTION": "detailText",
    "DESCRIPTION_TYPE": "detailTextType",
}
_CAMEL_SPECIAL = {v: k for k, v in _CRM_SPECIAL.items()}
_CRM_DEFAULT_SELECT = (
    "ID",
    "CATALOG_ID",
    "NAME",
    "CODE",
    "ACTIVE",
    "SORT",
    "XML_ID",
    "DESCRIPTION",
    "DESCRIPTION_TYPE",
    "SECTION_ID",
    "PRICE",
    "CURRENCY_ID",
    "VAT_ID",
    "VAT_INCLUDED",
    "MEASURE",
    "DATE_CREATE",
    "TIMESTAMP_X",
    "CREATED_BY",
    "MODIFIED_BY",
)


def _crm_id(store: ProductStore, params: dict[str, Any]) -> int:
    product_id = as_int(params.get("id", params.get("ID")))
    if not product_id or product_id <= 0:
        raise legacy_error("ID is not defined or invalid.")
    if product_id not in store.products:
        raise legacy_error("Not found")
    return product_id


def _crm_fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields", params.get("FIELDS"))
    if not isinstance(fields, dict) or not fields:
        raise legacy_error("The parameter 'fields' must be array.")
    return {_crm_to_camel(k): v for k, v in fields.items()}


def _add(store: ProductStore, params: dict[str, Any]):
    fields = _crm_fields(params)
    if fields.get("name") in (None, ""):
        raise legacy_error("Name is not specified.")
    return store.add(fields)["id"], None, None


def _update(store: ProductStore, params: dict[str, Any]):
    product_id = _crm_id(store, params)
    store.update(product_id, _crm_fields(params))
    return True, None, None


def _get(store: ProductStore, params: dict[str, Any]):
    return _crm_view(store.products[_crm_id(store, params)], None), None, None


def _delete(store: ProductStore, params: dict[str, Any]):
    del store.products[_crm_id(store, params)]
    return True, None, None


def _list(store: ProductStore, params: dict[str, Any]):
    flt = renamed_filter(params.get("filter"), _crm_to_camel)
    # As documented: without CATALOG_ID the default product catalog is read.
    if not any(split_op(k)[1] == "iblockId" for k in flt):
        flt["iblockId"] = store.default_iblock_id
    order = {_crm_to_camel(k): v for k, v in (order_param(params.get("order")) or {}).items()}
    rows = store.find(flt, order or None)
    page, total, nxt = paginate(rows, params.get("start"))
    select = [str(s).upper() for s in as_list(params.get("select") or [])]
    return [_crm_view(p, select) for p in page], total, nxt


METHODS: dict[str, Method] = {
    "crm.product.add": _add,
    "crm.product.update": _update,
    "crm.product.get": _get,
    "crm.product.list": _list,
    "crm.product.delete": _delete,
}


def _crm_to_camel(name: str) -> str:
    name = str(name).upper()
    if name in _CRM_SPECIAL:
        return _CRM_SPECIAL[name]
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _camel_to_crm(name: str) -> str:
    if name in _CAMEL_SPECIAL:
        return _CAMEL_SPECIAL[name]
    match = re.fullmatch(r"property(\d+)", name)
    if match:
        return f"PROPERTY_{match.group(1)}"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _crm_view(product: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    # Legacy CRM answers ids and numbers as strings.
    everything = {_camel_to_crm(k): _crm_value(v) for k, v in product.items()}
    wanted = list(_CRM_DEFAULT_SELECT) if not select or "*" in select else select
    if select and "*" in select:
        wanted = list(dict.fromkeys(wanted + list(everything)))
    return {k: everything.get(k) for k in wanted if k in everything or k in _CRM_DEFAULT_SELECT}


def _crm_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value
