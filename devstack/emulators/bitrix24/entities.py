"""The emulated portal's CRM entities, smart-process items and tasks, each kept in the form
its REST family answers with, plus a log of what changed when.

- ``crm.deal|lead|contact|company``: UPPER_CASE fields, every value a string (ids, money),
  ``"Y"/"N"`` booleans, ``DATE_CREATE`` / ``DATE_MODIFY`` in ISO 8601 with the portal's
  offset (see ``crm_lead_list_one_page_success.json``).
- ``crm.item`` (smart processes): camelCase, numeric ``id`` and ``entityTypeId``,
  ``createdTime`` / ``updatedTime`` (see ``crm_item_add.json``).
- ``tasks.task``: camelCase out, string ids, ``changedDate``; an empty object is ``[]``
  (see ``get_all_tasks.json``).

Tests seed them through ``PUT/DELETE /_emulator/entities/{entity}/{id}``; a version field
a test names is kept as given (to stage several changes within one second), otherwise it
becomes now.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from devstack.emulators.bitrix24.envelope import iso

CRM_TYPES = ("deal", "lead", "contact", "company")

_CRM_COMMON = {
    "ASSIGNED_BY_ID": "1",
    "CREATED_BY_ID": "1",
    "MODIFY_BY_ID": "1",
    "OPENED": "Y",
    "COMMENTS": None,
    "ORIGIN_ID": None,
}
_CRM_DEFAULTS: dict[str, dict[str, Any]] = {
    "deal": {
        "TITLE": "",
        "TYPE_ID": "SALE",
        "STAGE_ID": "NEW",
        "CATEGORY_ID": "0",
        "OPPORTUNITY": "0.00",
        "CURRENCY_ID": "RUB",
        "CLOSED": "N",
        "CONTACT_ID": None,
        "COMPANY_ID": None,
    },
    "lead": {
        "TITLE": "",
        "NAME": None,
        "LAST_NAME": None,
        "STATUS_ID": "NEW",
        "OPPORTUNITY": "0.00",
        "CURRENCY_ID": "RUB",
        "HAS_PHONE": "N",
        "HAS_EMAIL": "N",
    },
    "contact": {
        "NAME": "",
        "LAST_NAME": "",
        "TYPE_ID": "CLIENT",
        "COMPANY_ID": None,
        "HAS_PHONE": "N",
        "HAS_EMAIL": "N",
    },
    "company": {
        "TITLE": "",
        "COMPANY_TYPE": "CUSTOMER",
        "INDUSTRY": None,
        "HAS_PHONE": "N",
        "HAS_EMAIL": "N",
    },
}
_ITEM_DEFAULTS = {
    "xmlId": "",
    "title": "",
    "createdBy": 1,
    "updatedBy": 1,
    "movedBy": 1,
    "assignedById": 1,
    "opened": "Y",
    "categoryId": 0,
    "observers": [],
}
_TASK_DEFAULTS = {
    "title": "",
    "description": "",
    "status": "2",
    "subStatus": "-1",
    "priority": "1",
    "responsibleId": "1",
    "createdBy": "1",
    "groupId": "0",
    "group": [],
}


def upper_to_camel(name: str) -> str:
    """``CHANGED_DATE`` -> ``changedDate``; a name already in camelCase stays as it is."""
    if not re.fullmatch(r"[A-Z0-9_]+", name):
        return name
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _crm_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, (int, float)):
        return str(value)
    return value


class EntityStore:
    """CRM entities, smart-process items and tasks of one portal, and their change log."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.crm: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in CRM_TYPES}
        self.items: dict[int, dict[int, dict[str, Any]]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        #: Product rows of deals (crm.deal.productrows.*), by deal id.
        self.deal_rows: dict[int, list[dict[str, Any]]] = {}
        #: What changed when: {"entity", "id", "change", "version", "at"} per admin write.
        self.changes: list[dict[str, Any]] = []
        self._clock = clock

    def put_crm(self, entity: str, ident: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite CRM ``entity`` ``ident`` from fields (any case, any scalar)."""
        now = iso(self._clock())
        table = self.crm[entity]
        record = table.get(ident) or {
            "ID": str(ident),
            **_CRM_COMMON,
            **_CRM_DEFAULTS[entity],
            "DATE_CREATE": now,
        }
        given = {str(k).upper(): _crm_text(v) for k, v in fields.items()}
        given.pop("ID", None)
        record = {**record, **given}
        if "DATE_MODIFY" not in given:
            record["DATE_MODIFY"] = now
        table[ident] = record
        return self._logged(entity, ident, "upsert", record["DATE_MODIFY"], record)

    def put_item(self, type_id: int, ident: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite smart-process item ``ident`` of type ``type_id``."""
        now = iso(self._clock())
        table = self.items.setdefault(type_id, {})
        record = table.get(ident) or {
            "id": ident,
            **_ITEM_DEFAULTS,
            "createdTime": now,
            "movedTime": now,
            "stageId": f"DT{type_id}_1:NEW",
        }
        given = {upper_to_camel(str(k)): v for k, v in fields.items()}
        given.pop("id", None)
        record = {**record, **given, "entityTypeId": type_id}
        if "updatedTime" not in given:
            record["updatedTime"] = now
        table[ident] = record
        return self._logged(f"item:{type_id}", ident, "upsert", record["updatedTime"], record)

    def put_task(self, ident: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite task ``ident`` (fields UPPER_CASE or camelCase)."""
        now = iso(self._clock())
        record = self.tasks.get(ident) or {"id": str(ident), **_TASK_DEFAULTS, "createdDate": now}
        given = {upper_to_camel(str(k)): _crm_text(v) for k, v in fields.items()}
        given.pop("id", None)
        record = {**record, **given}
        if "changedDate" not in given:
            record["changedDate"] = now
        self.tasks[ident] = record
        return self._logged("task", ident, "upsert", record["changedDate"], record)

    def delete(self, entity: str, ident: int) -> bool:
        """Remove ``entity`` ``ident`` (``deal``, ``task``, ``item:<type>``); whether it existed."""
        table = self.table(entity)
        if table is None or table.pop(ident, None) is None:
            return False
        self._logged(entity, ident, "delete", None, None)
        return True

    def table(self, entity: str) -> dict[int, dict[str, Any]] | None:
        """The id -> record map behind an entity name, or None for an unknown name."""
        if entity in self.crm:
            return self.crm[entity]
        if entity == "task":
            return self.tasks
        match = re.fullmatch(r"item:([1-9][0-9]*)", entity)
        return self.items.setdefault(int(match.group(1)), {}) if match else None

    def log_change(self, entity: str, ident: int, change: str, version: Any) -> None:
        """Append to the change log (products are stored elsewhere but logged here too)."""
        self.changes.append(
            {
                "entity": entity,
                "id": ident,
                "change": change,
                "version": version,
                "at": iso(self._clock()),
                "ts": self._clock(),
            }
        )

    def _logged(
        self, entity: str, ident: int, change: str, version: Any, record: dict[str, Any] | None
    ) -> dict[str, Any]:
        self.log_change(entity, ident, change, version)
        return dict(record or {})
