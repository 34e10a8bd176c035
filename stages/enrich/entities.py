"""How each Bitrix24 entity is read: the get call the enrichment batches, where the entity
sits in the answer, which field is its version, and the cursor listing the poller uses.

Pure: specs and functions over answers, no I/O. Method families differ (see
external-systems.md): ``crm.deal.*`` answers the bare record in UPPER_CASE with
``DATE_MODIFY``; ``crm.item.*`` wraps camelCase in ``item`` with ``updatedTime``;
``tasks.task.*`` takes UPPER_CASE, wraps camelCase in ``task`` with ``changedDate`` and
answers ``[]`` for a task that is gone; ``catalog.product.*`` wraps in ``product`` with
``timestampX``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from connectors.bitrix24.errors import InvalidRequest
from connectors.bitrix24.events import EventRef
from mmstream.errors import PermanentError

DELETED = "deleted"


@dataclass(frozen=True)
class Listing:
    """A cursor listing: rows modified after a time, oldest first, ids as tie-break."""

    method: str
    version_filter: str  # filter field of the modification time
    id_filter: str  # filter field of the id
    order: dict[str, str]
    select: list[str]
    rows_key: str | None  # the answer wraps rows in this key (None: a bare list)
    row_id: str
    row_version: str
    params: dict[str, Any] = field(default_factory=dict)
    # start=-1 skips the portal's COUNT(*): documented for crm.* bulk reads.
    start: int = -1


@dataclass(frozen=True)
class EntitySpec:
    """How one entity is fetched and versioned."""

    name: str
    get_method: str
    wrapper: str | None  # the get answer wraps the entity in this key
    version_field: str
    listing: Listing


def _crm(name: str) -> EntitySpec:
    return EntitySpec(
        name,
        f"crm.{name}.get",
        None,
        "DATE_MODIFY",
        Listing(
            f"crm.{name}.list",
            "DATE_MODIFY",
            "ID",
            {"DATE_MODIFY": "ASC", "ID": "ASC"},
            ["ID", "DATE_MODIFY"],
            None,
            "ID",
            "DATE_MODIFY",
        ),
    )


SPECS: dict[str, EntitySpec] = {
    **{name: _crm(name) for name in ("deal", "contact", "company")},
    "item": EntitySpec(
        "item",
        "crm.item.get",
        "item",
        "updatedTime",
        Listing(
            "crm.item.list",
            "updatedTime",
            "id",
            {"updatedTime": "ASC", "id": "ASC"},
            ["id", "updatedTime"],
            "items",
            "id",
            "updatedTime",
        ),
    ),
    "task": EntitySpec(
        "task",
        "tasks.task.get",
        "task",
        "changedDate",
        Listing(
            "tasks.task.list",
            "CHANGED_DATE",
            "ID",
            {"CHANGED_DATE": "asc", "ID": "asc"},
            ["ID", "CHANGED_DATE"],
            "tasks",
            "id",
            "changedDate",
            start=0,
        ),
    ),
    "product": EntitySpec(
        "product",
        "catalog.product.get",
        "product",
        "timestampX",
        Listing(
            "catalog.product.list",
            "timestampX",
            "id",
            {"timestampX": "asc", "id": "asc"},
            ["id", "iblockId", "timestampX"],
            "products",
            "id",
            "timestampX",
            start=0,
        ),
    ),
}


def get_params(ref: EventRef) -> dict[str, Any]:
    """Parameters of the get call for the entity an event names."""
    if ref.entity == "item":
        return {"entityTypeId": int(ref.entity_type_id or 0), "id": int(ref.id)}
    if ref.entity == "task":
        return {"taskId": int(ref.id)}
    return {"id": int(ref.id)}


def get_command(ref: EventRef) -> str:
    """The get call as a ``batch`` command string (``method?query``)."""
    return f"{SPECS[ref.entity].get_method}?{urlencode(get_params(ref))}"


def entity_of(ref: EventRef, result: Any) -> dict[str, Any] | None:
    """The entity in a get answer; None when the answer says it is gone.

    An empty answer (``[]``: how tasks.task.get reports a missing task) means gone; any
    other unexpected shape is a PermanentError (the record goes to the DLQ).
    """
    if result in (None, [], {}):
        return None
    spec = SPECS[ref.entity]
    entity = result.get(spec.wrapper) if spec.wrapper and isinstance(result, dict) else result
    if entity in (None, [], {}):
        return None
    if not isinstance(entity, dict):
        raise PermanentError(f"{spec.get_method} answered {type(entity).__name__}, not an object")
    return entity


def version_of(ref: EventRef, entity: dict[str, Any]) -> str:
    """The entity's modification time as the portal wrote it ('' when it has none)."""
    value = entity.get(SPECS[ref.entity].version_field)
    return "" if value is None else str(value)


def digest(entity: dict[str, Any]) -> str:
    """A content hash of the entity: two changes within one second differ here."""
    canonical = json.dumps(entity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


_GONE_TEXT = re.compile(r"not found|does not exist|not exists|не найден", re.IGNORECASE)


def is_gone(err: BaseException) -> bool:
    """Whether a refused get means the entity no longer exists (then: a tombstone).

    Legacy crm.* says ``"" / "Not found"``, crm.item.* ``NOT_FOUND``, catalog.* "does not
    exist". Only 4xx refusals of the input count: a method that is not found, a denied
    right or a portal error are never read as a deletion.
    """
    if type(err) is not InvalidRequest:
        return False
    return err.error.upper() == "NOT_FOUND" or bool(_GONE_TEXT.search(err.description))
