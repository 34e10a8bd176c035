"""Legacy write methods ``crm.deal|lead|contact|company.add/update/delete``.

As the portal answers them: UPPER_CASE ``fields``; ``add`` returns the new id as an integer
(``crm_contact_add_batch.json``), ``update`` and ``delete`` return ``true``; errors are
legacy errors (HTTP 400, empty code, a text). Read-only fields a client sends (``ID``,
``DATE_CREATE``, ``DATE_MODIFY``, ...) are ignored, so ``DATE_MODIFY`` is always the time
of the write — the cursor poller's version. External keys (``ORIGIN_ID``,
``ORIGINATOR_ID``) are kept and filterable through ``crm.<type>.list``. Every write goes
through :class:`EntityStore`, so it lands in the change log as an admin edit does.

Multi-fields (``PHONE``, ``EMAIL``, ``WEB``, ``IM``) follow the portal's rules: each value
gets an ``ID``; on update a value with an ``ID`` replaces that value (an empty ``VALUE``
removes it) and a value without one is added.
"""

from __future__ import annotations

from typing import Any

from devstack.emulators.bitrix24.entities import CRM_TYPES, EntityStore
from devstack.emulators.bitrix24.envelope import legacy_error
from devstack.emulators.bitrix24.query import as_int, as_list
from devstack.emulators.bitrix24.read_methods import EntityMethod

_READ_ONLY = frozenset({"ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID"})
_MULTI_FIELDS = ("PHONE", "EMAIL", "WEB", "IM")
_HAS_FLAGS = {"PHONE": "HAS_PHONE", "EMAIL": "HAS_EMAIL"}
# What the portal refuses to create without; other types get default titles.
_REQUIRED: dict[str, tuple[tuple[str, ...], str]] = {
    "company": (("TITLE",), 'The field "Company name" is required.'),
    "contact": (
        ("NAME", "LAST_NAME"),
        'One of the fields "First name" or "Last name" is required.',
    ),
}


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields", params.get("FIELDS"))
    if not isinstance(fields, dict):
        raise legacy_error("The parameter 'fields' must be array.")
    return {str(k).upper(): v for k, v in fields.items() if str(k).upper() not in _READ_ONLY}


def _existing_id(store: EntityStore, entity: str, params: dict[str, Any]) -> int:
    ident = as_int(params.get("id", params.get("ID")))
    if not ident or ident <= 0:
        raise legacy_error("ID is not defined or invalid.")
    if ident not in store.crm[entity]:
        raise legacy_error("Not found")
    return ident


def next_id(store: EntityStore, entity: str) -> int:
    """The id the next created ``entity`` gets: ids of deleted records are not reused."""
    used = [*store.crm[entity], *(c["id"] for c in store.changes if c["entity"] == entity)]
    return max(used, default=0) + 1


def _multi_values(value: Any) -> list[dict[str, Any]]:
    # JSON sends a list of maps; a form-encoded call (PHONE[0][VALUE]=…) a map keyed 0..n.
    return [v for v in as_list(value) if isinstance(v, dict)]


def merge_multi(
    current: list[dict[str, Any]], given: Any, field: str, first_id: int
) -> list[dict[str, Any]]:
    """The values of multi-field ``field`` after a write of ``given`` over ``current``.

    New values get ids counting from ``first_id``.
    """
    merged = [dict(v) for v in current]
    new_id = first_id
    for value in _multi_values(given):
        ident = as_int(value.get("ID"))
        old = next((m for m in merged if as_int(m.get("ID")) == ident), None) if ident else None
        if old is not None:
            if value.get("VALUE") in (None, "") and "VALUE" in value:
                merged.remove(old)
            else:
                old.update({str(k).upper(): v for k, v in value.items()})
            continue
        if value.get("VALUE") in (None, ""):
            continue
        merged.append(
            {
                "ID": str(new_id),
                "VALUE_TYPE": value.get("VALUE_TYPE", "WORK"),
                "VALUE": str(value["VALUE"]),
                "TYPE_ID": field,
            }
        )
        new_id += 1
    return merged


def _with_multi(
    record: dict[str, Any] | None, fields: dict[str, Any], first_id: int
) -> dict[str, Any]:
    out = dict(fields)
    for field in _MULTI_FIELDS:
        if field not in fields:
            continue
        current = (record or {}).get(field) or []
        out[field] = merge_multi(current, fields[field], field, first_id)
        first_id += len(_multi_values(fields[field]))
        if field in _HAS_FLAGS:
            out[_HAS_FLAGS[field]] = "Y" if out[field] else "N"
    return out


def _multi_seq(store: EntityStore) -> int:
    # Multi-field value ids are unique across the portal, as in its b_crm_field_multi table.
    ids = [
        as_int(v.get("ID")) or 0
        for table in store.crm.values()
        for record in table.values()
        for field in _MULTI_FIELDS
        for v in (record.get(field) or [])
        if isinstance(v, dict)
    ]
    return max(ids, default=0) + 1


def _crm_write_methods(entity: str) -> dict[str, EntityMethod]:
    def add(store: EntityStore, params: dict[str, Any]):
        fields = _fields(params)
        required, message = _REQUIRED.get(entity, ((), ""))
        if required and all(fields.get(f) in (None, "") for f in required):
            raise legacy_error(message)
        ident = next_id(store, entity)
        fields = _with_multi(None, fields, _multi_seq(store))
        store.put_crm(entity, ident, {"ORIGINATOR_ID": None, **fields})
        return ident, None, None

    def update(store: EntityStore, params: dict[str, Any]):
        ident = _existing_id(store, entity, params)
        fields = _fields(params)
        required, message = _REQUIRED.get(entity, ((), ""))
        if required and any(f in fields for f in required):
            after = {**store.crm[entity][ident], **fields}
            if all(after.get(f) in (None, "") for f in required):
                raise legacy_error(message)
        fields = _with_multi(store.crm[entity][ident], fields, _multi_seq(store))
        store.put_crm(entity, ident, fields)
        return True, None, None

    def delete(store: EntityStore, params: dict[str, Any]):
        store.delete(entity, _existing_id(store, entity, params))
        return True, None, None

    return {
        f"crm.{entity}.add": add,
        f"crm.{entity}.update": update,
        f"crm.{entity}.delete": delete,
    }


_ROW_FLOATS = ("PRICE", "QUANTITY", "DISCOUNT_RATE", "DISCOUNT_SUM", "TAX_RATE")


def _rows_set(store: EntityStore, params: dict[str, Any]):
    # Replaces every row of the deal, as the portal does; numbers come back as floats.
    ident = _existing_id(store, "deal", params)
    rows = params.get("rows") or []
    if not isinstance(rows, list):
        raise legacy_error("Parameter 'rows' must be array.")
    stored = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise legacy_error("Parameter 'rows' must be array.")
        fields = {str(k).upper(): v for k, v in row.items()}
        out = {
            "ID": str(ident * 1000 + n),
            "OWNER_ID": str(ident),
            "OWNER_TYPE": "D",
            "PRODUCT_ID": as_int(fields.get("PRODUCT_ID")) or 0,
            "PRODUCT_NAME": str(fields.get("PRODUCT_NAME") or ""),
            "MEASURE_CODE": as_int(fields.get("MEASURE_CODE")) or 796,
            "MEASURE_NAME": str(fields.get("MEASURE_NAME") or "шт"),
        }
        for name in _ROW_FLOATS:
            given = fields.get(name)
            out[name] = (
                float(given) if given not in (None, "") else (1.0 if name == "QUANTITY" else 0.0)
            )
        out["TAX_INCLUDED"] = "Y" if fields.get("TAX_INCLUDED") in ("Y", True) else "N"
        stored.append(out)
    store.deal_rows[ident] = stored
    return True, None, None


def _rows_get(store: EntityStore, params: dict[str, Any]):
    ident = _existing_id(store, "deal", params)
    return [dict(r) for r in store.deal_rows.get(ident, [])], None, None


METHODS: dict[str, EntityMethod] = {
    **{name: fn for entity in CRM_TYPES for name, fn in _crm_write_methods(entity).items()},
    "crm.deal.productrows.set": _rows_set,
    "crm.deal.productrows.get": _rows_get,
}
