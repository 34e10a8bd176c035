"""Read methods over the entity store: ``crm.deal|lead|contact|company.get/list`` (legacy:
UPPER_CASE, errors with an empty code), ``crm.item.get/list`` (camelCase, coded errors) and
``tasks.task.get/list`` (UPPER_CASE in, camelCase out; a missing task is ``result: []``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devstack.emulators.bitrix24.entities import CRM_TYPES, EntityStore, upper_to_camel
from devstack.emulators.bitrix24.envelope import ApiError, legacy_error, missing_param
from devstack.emulators.bitrix24.query import (
    as_int,
    as_list,
    matches,
    order_param,
    paginate,
    renamed_filter,
    sort_rows,
)

#: A REST method over the entity store: params -> (result, total, next).
EntityMethod = Callable[[EntityStore, dict[str, Any]], tuple[Any, Any, Any]]


def _listing(
    rows: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    id_field: str,
    rename: Callable[[str], str],
) -> tuple[list[dict[str, Any]], Any, Any]:
    """Filter, order, page and select ``rows`` whose field names ``rename`` maps to."""
    flt = renamed_filter(params.get("filter"), rename)
    order = {rename(str(k)): v for k, v in (order_param(params.get("order")) or {}).items()}
    found = sort_rows([r for r in rows if matches(r, flt)], order or {id_field: "ASC"})
    page, total, nxt = paginate(found, params.get("start"))
    select = [rename(str(s)) for s in as_list(params.get("select") or [])]
    if select and "*" not in select:
        wanted = [id_field, *(s for s in select if s != id_field)]
        page = [{k: r.get(k) for k in wanted if k in r} for r in page]
    else:
        page = [dict(r) for r in page]
    return page, total, nxt


def _crm_methods(entity: str) -> dict[str, EntityMethod]:
    def get(store: EntityStore, params: dict[str, Any]):
        ident = as_int(params.get("id", params.get("ID")))
        if not ident or ident <= 0:
            raise legacy_error("ID is not defined or invalid.")
        record = store.crm[entity].get(ident)
        if record is None:
            raise legacy_error("Not found")
        return dict(record), None, None

    def listing(store: EntityStore, params: dict[str, Any]):
        return _listing(
            list(store.crm[entity].values()), params, id_field="ID", rename=lambda n: n.upper()
        )

    return {f"crm.{entity}.get": get, f"crm.{entity}.list": listing}


def _item_type(params: dict[str, Any]) -> int:
    if params.get("entityTypeId") in (None, ""):
        raise missing_param("entityTypeId")
    type_id = as_int(params.get("entityTypeId"))
    if not type_id or type_id <= 0:
        raise ApiError(400, "NOT_FOUND", "Смарт-процесс не найден")
    return type_id


def _item_get(store: EntityStore, params: dict[str, Any]):
    type_id = _item_type(params)
    if params.get("id") in (None, ""):
        raise missing_param("id")
    record = store.items.get(type_id, {}).get(as_int(params.get("id")) or 0)
    if record is None:
        raise ApiError(400, "NOT_FOUND", "Элемент не найден")
    return {"item": dict(record)}, None, None


def _item_list(store: EntityStore, params: dict[str, Any]):
    rows = list(store.items.get(_item_type(params), {}).values())
    page, total, nxt = _listing(rows, params, id_field="id", rename=lambda n: n)
    return {"items": page}, total, nxt


def _task_get(store: EntityStore, params: dict[str, Any]):
    raw = params.get("taskId", params.get("TASKID", params.get("id")))
    if raw in (None, ""):
        raise ApiError(
            400,
            "100",
            "CTaskItem All parameters in the constructor must have real "
            "class type (internal error)",
        )
    ident = as_int(raw)
    if ident is None:
        raise ApiError(400, "0", "wrong task id")
    record = store.tasks.get(ident)
    # As documented: a task that does not exist (or cannot be read) is an empty result.
    return ({"task": dict(record)} if record else []), None, None


def _task_list(store: EntityStore, params: dict[str, Any]):
    page, total, nxt = _listing(
        list(store.tasks.values()), params, id_field="id", rename=upper_to_camel
    )
    return {"tasks": page}, total, nxt


METHODS: dict[str, EntityMethod] = {
    **{name: fn for entity in CRM_TYPES for name, fn in _crm_methods(entity).items()},
    "crm.item.get": _item_get,
    "crm.item.list": _item_list,
    "tasks.task.get": _task_get,
    "tasks.task.list": _task_list,
}
