"""Write methods for smart-process items and tasks, as the portal answers them.

- ``crm.item.add/update``: ``entityTypeId`` plus camelCase ``fields``; the answer is
  ``{"item": {...}}`` (``crm_item_add.json``); errors carry codes (``NOT_FOUND``).
  Only smart processes (``entityTypeId`` >= 128) are kept here: leads, deals, contacts and
  companies are written through the legacy ``crm.<type>.*`` methods of this emulator.
- ``tasks.task.add/update``: ``fields`` in UPPER_CASE, the answer ``{"task": {...}}`` in
  camelCase with string ids; a task needs a ``TITLE`` and a ``RESPONSIBLE_ID``.

Both go through :class:`EntityStore`, so versions (``updatedTime``, ``changedDate``) move
and the change log records the write.
"""

from __future__ import annotations

from typing import Any

from devstack.emulators.bitrix24.entities import EntityStore
from devstack.emulators.bitrix24.envelope import ApiError, missing_param
from devstack.emulators.bitrix24.query import as_int
from devstack.emulators.bitrix24.read_methods import EntityMethod

# Smart processes start at 128; 1..4 and the other system types have their own methods.
MIN_SMART_PROCESS = 128
_ITEM_READ_ONLY = frozenset(
    {"id", "createdTime", "updatedTime", "movedTime", "createdBy", "updatedBy", "entityTypeId"}
)
_TASK_READ_ONLY = frozenset({"ID", "CREATED_DATE", "CHANGED_DATE", "CREATED_BY"})


def _item_type(params: dict[str, Any]) -> int:
    if params.get("entityTypeId") in (None, ""):
        raise missing_param("entityTypeId")
    type_id = as_int(params.get("entityTypeId"))
    if type_id is None or type_id < MIN_SMART_PROCESS:
        raise ApiError(400, "NOT_FOUND", "Смарт-процесс не найден")
    return type_id


def _map_fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise missing_param("fields")
    return fields


def _next_id(used: list[int]) -> int:
    return max(used, default=0) + 1


def _item_add(store: EntityStore, params: dict[str, Any]):
    type_id = _item_type(params)
    fields = {k: v for k, v in _map_fields(params).items() if k not in _ITEM_READ_ONLY}
    entity = f"item:{type_id}"
    used = [
        *store.items.get(type_id, {}),
        *(c["id"] for c in store.changes if c["entity"] == entity),
    ]
    item = store.put_item(type_id, _next_id(used), fields)
    return {"item": item}, None, None


def _item_update(store: EntityStore, params: dict[str, Any]):
    type_id = _item_type(params)
    if params.get("id") in (None, ""):
        raise missing_param("id")
    ident = as_int(params.get("id")) or 0
    if ident not in store.items.get(type_id, {}):
        raise ApiError(400, "NOT_FOUND", "Элемент не найден")
    fields = {k: v for k, v in _map_fields(params).items() if k not in _ITEM_READ_ONLY}
    return {"item": store.put_item(type_id, ident, fields)}, None, None


def _task_fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise ApiError(400, "ERROR_CORE", "Не переданы поля задачи")
    return {str(k).upper(): v for k, v in fields.items() if str(k).upper() not in _TASK_READ_ONLY}


def _task_add(store: EntityStore, params: dict[str, Any]):
    fields = _task_fields(params)
    if str(fields.get("TITLE") or "").strip() == "":
        raise ApiError(400, "ERROR_CORE", "Не указано название задачи")
    if as_int(fields.get("RESPONSIBLE_ID")) in (None, 0):
        raise ApiError(400, "ERROR_CORE", "Не указан ответственный")
    used = [*store.tasks, *(c["id"] for c in store.changes if c["entity"] == "task")]
    return {"task": store.put_task(_next_id(used), fields)}, None, None


def _task_update(store: EntityStore, params: dict[str, Any]):
    raw = params.get("taskId", params.get("TASKID", params.get("id")))
    ident = as_int(raw)
    if ident is None or ident not in store.tasks:
        raise ApiError(400, "ERROR_CORE", "Задача не найдена или доступ запрещён")
    fields = _task_fields(params)
    if "TITLE" in fields and str(fields["TITLE"] or "").strip() == "":
        raise ApiError(400, "ERROR_CORE", "Не указано название задачи")
    return {"task": store.put_task(ident, fields)}, None, None


METHODS: dict[str, EntityMethod] = {
    "crm.item.add": _item_add,
    "crm.item.update": _item_update,
    "tasks.task.add": _task_add,
    "tasks.task.update": _task_update,
}
