"""The portal's reference data: warehouses (``catalog.store.*``), price types
(``catalog.priceType.*``), prices (``catalog.price.*``) and users (``user.get``).

The ``catalog.*`` families are camelCase with numeric ids and coded errors, like
``catalog.product.*``: ``add``/``update`` answer ``{"store"|"priceType"|"price": {...}}``,
``list`` answers ``{"stores"|"priceTypes"|"prices": [...]}`` paged by 50. A price needs an
existing product and price type. ``user.get`` is the old user family: UPPER_CASE fields,
string ids, a filter either under ``FILTER`` or as top-level fields, a plain list paged by
50. REST cannot create users without an invitation, so tests seed them with
``POST /_emulator/users`` (:meth:`Directory.put_user`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Kind:
    """One ``catalog.*`` family: its names, defaults and required fields."""

    one: str
    many: str
    defaults: dict[str, Any]
    required: tuple[str, ...]
    int_fields: frozenset[str]
    version: str | None


_STORE = _Kind(
    "store",
    "stores",
    {
        "title": "",
        "active": "Y",
        "address": "",
        "description": None,
        "gpsN": 0,
        "gpsS": 0,
        "imageId": None,
        "userId": 1,
        "modifiedBy": 1,
        "phone": None,
        "schedule": None,
        "xmlId": None,
        "sort": 100,
        "email": None,
        "issuingCenter": "N",
        "code": None,
    },
    ("address",),
    frozenset({"id", "sort", "userId", "modifiedBy", "imageId"}),
    "dateModify",
)
_PRICE_TYPE = _Kind(
    "priceType",
    "priceTypes",
    {
        "name": "",
        "base": "N",
        "sort": 100,
        "xmlId": None,
        "createdBy": 1,
        "modifiedBy": 1,
    },
    ("name",),
    frozenset({"id", "sort", "createdBy", "modifiedBy"}),
    "timestampX",
)
_PRICE = _Kind(
    "price",
    "prices",
    {
        "productId": None,
        "catalogGroupId": None,
        "price": None,
        "currency": "RUB",
        "priceScale": None,
        "quantityFrom": None,
        "quantityTo": None,
        "extraId": None,
    },
    ("productId", "catalogGroupId", "price", "currency"),
    frozenset({"id", "productId", "catalogGroupId", "quantityFrom", "quantityTo", "extraId"}),
    "timestampX",
)
_KINDS = {k.one: k for k in (_STORE, _PRICE_TYPE, _PRICE)}

_USER_DEFAULTS = {
    "ACTIVE": True,
    "NAME": "",
    "LAST_NAME": "",
    "SECOND_NAME": "",
    "EMAIL": "",
    "XML_ID": None,
    "WORK_POSITION": "",
    "PERSONAL_MOBILE": "",
    "UF_DEPARTMENT": [1],
    "USER_TYPE": "employee",
    "IS_ONLINE": "N",
}


class Directory:
    """Warehouses, price types, prices and users of one portal.

    ``product_exists`` tells whether a product id is in the portal's catalog (prices refer
    to products kept by the product store).
    """

    def __init__(
        self, product_exists: Callable[[int], bool], clock: Callable[[], float] = time.time
    ) -> None:
        self.rows: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in _KINDS}
        self.users: dict[int, dict[str, Any]] = {}
        self._product_exists = product_exists
        self._clock = clock
        self._next = dict.fromkeys(_KINDS, 1)

    def put_user(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite a user (``ID`` given or the next one); the stored user."""
        given = {str(k).upper(): v for k, v in fields.items()}
        ident = as_int(given.pop("ID", None)) or max(self.users, default=0) + 1
        user = {**(self.users.get(ident) or {"ID": str(ident), **_USER_DEFAULTS}), **given}
        self.users[ident] = user
        return dict(user)

    def write(self, kind: str, ident: int | None, fields: dict[str, Any]) -> dict[str, Any]:
        """Create (``ident`` None) or update a row of ``kind``; the stored row."""
        spec = _KINDS[kind]
        values = _coerce(spec, {k: v for k, v in fields.items() if k != "id"})
        table = self.rows[kind]
        if ident is None:
            ident = self._next[kind]
            self._next[kind] += 1
            row = {"id": ident, **spec.defaults}
            if kind == "store":
                row["dateCreate"] = iso(self._clock())
        else:
            row = table[ident]
        row = {**row, **values}
        if kind == "price":
            self._check_price(row)
            row["priceScale"] = row["price"]
        if spec.version:
            row[spec.version] = iso(self._clock())
        table[ident] = row
        return dict(row)

    def _check_price(self, row: dict[str, Any]) -> None:
        if not self._product_exists(as_int(row["productId"]) or 0):
            raise ApiError(400, "ERROR_PRODUCT_NOT_EXISTS", "Product is not exists")
        if as_int(row["catalogGroupId"]) not in self.rows["priceType"]:
            raise ApiError(400, "ERROR_PRICE_TYPE_NOT_EXISTS", "Price type is not exists")


def _coerce(spec: _Kind, fields: dict[str, Any]) -> dict[str, Any]:
    # Form-encoded calls send every value as a string; the portal stores ids as numbers.
    out = dict(fields)
    for key in spec.int_fields & out.keys():
        number = as_int(out[key])
        if number is not None:
            out[key] = number
    if "price" in out and out["price"] not in (None, ""):
        try:
            out["price"] = float(out["price"])
        except (TypeError, ValueError):
            raise ApiError(400, 0, "Invalid price value") from None
    return out


# "No row with this id" as the portal answers each family (HTTP 400): the catalog module's
# ErrorCode::STORE_ENTITY_NOT_EXISTS / PRICE_TYPE_ENTITY_NOT_EXISTS, and for prices code 0
# with the Price controller's text (catalog.store.update / priceType.update / price.update
# docs, "Возможные коды ошибок").
_NOT_FOUND = {
    "store": ApiError(400, 201100000000, "Entity is not exists"),
    "priceType": ApiError(400, 201000000000, "Entity is not exists"),
    "price": ApiError(400, 0, "Price is not exists"),
}


#: A REST method over the directory: params -> (result, total, next).
DirectoryMethod = Callable[[Directory, dict[str, Any]], tuple[Any, Any, Any]]


def _methods(spec: _Kind) -> dict[str, DirectoryMethod]:
    not_found = _NOT_FOUND[spec.one]

    def fields_of(params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise missing_param("fields")
        return fields

    def add(directory: Directory, params: dict[str, Any]):
        fields = fields_of(params)
        missing = [f for f in spec.required if fields.get(f) in (None, "")]
        if missing:
            raise ApiError(400, 0, f"Required fields: {', '.join(missing)}")
        return {spec.one: directory.write(spec.one, None, fields)}, None, None

    def update(directory: Directory, params: dict[str, Any]):
        if params.get("id") in (None, ""):
            raise missing_param("id")
        ident = as_int(params.get("id"))
        if ident not in directory.rows[spec.one]:
            raise not_found
        fields = fields_of(params)
        emptied = [f for f in spec.required if f in fields and fields[f] in (None, "")]
        if emptied:
            raise ApiError(400, 0, f"Required fields: {', '.join(emptied)}")
        return {spec.one: directory.write(spec.one, ident, fields)}, None, None

    def listing(directory: Directory, params: dict[str, Any]):
        flt = params.get("filter") or {}
        if not isinstance(flt, dict):
            raise ApiError(400, 0, "Incorrect filter format")
        rows = [r for r in directory.rows[spec.one].values() if matches(r, flt)]
        rows = sort_rows(rows, order_param(params.get("order")) or {"id": "ASC"})
        page, total, nxt = paginate(rows, params.get("start"))
        select = [str(s) for s in as_list(params.get("select") or [])]
        if select and "*" not in select:
            page = [{k: r.get(k) for k in ["id", *select] if k in r} for r in page]
        else:
            page = [dict(r) for r in page]
        return {spec.many: page}, total, nxt

    prefix = f"catalog.{spec.one}"
    # Method names are matched lower-cased (catalog.pricetype.list), as the portal does.
    return {
        f"{prefix}.add".lower(): add,
        f"{prefix}.update".lower(): update,
        f"{prefix}.list".lower(): listing,
    }


def _user_get(directory: Directory, params: dict[str, Any]):
    upper = {str(k).upper(): v for k, v in params.items()}
    flt = upper.pop("FILTER", None)
    sort, order = upper.pop("SORT", "ID"), upper.pop("ORDER", "ASC")
    start = upper.pop("START", None)
    upper.pop("ADMIN_MODE", None)
    # Besides FILTER, the old user.get takes filter fields at the top level.
    conditions = {str(k).upper(): v for k, v in (flt if isinstance(flt, dict) else {}).items()}
    conditions.update(upper)
    if "ACTIVE" in conditions:
        active = str(conditions.pop("ACTIVE")).upper() in ("Y", "TRUE", "1")
        conditions["ACTIVE"] = active
    rows = [u for u in directory.users.values() if _user_matches(u, conditions)]
    rows = sort_rows(rows, {str(sort).upper(): order})
    page, total, nxt = paginate(rows, start)
    return [dict(u) for u in page], total, nxt


def _user_matches(user: dict[str, Any], conditions: dict[str, Any]) -> bool:
    for key, expected in conditions.items():
        if key == "ACTIVE":
            if bool(user.get("ACTIVE")) != expected:
                return False
            continue
        actual = user.get(key)
        if isinstance(actual, list):
            wanted = {str(v) for v in as_list(expected)}
            if not wanted & {str(v) for v in actual}:
                return False
        # E-mails are compared as the portal's SQL does: case-insensitively.
        elif not matches(
            {key: str(actual or "").lower()}, {key: [str(v).lower() for v in as_list(expected)]}
        ):
            return False
    return True


METHODS: dict[str, DirectoryMethod] = {
    **{name: fn for spec in _KINDS.values() for name, fn in _methods(spec).items()},
    "user.get": _user_get,
}
