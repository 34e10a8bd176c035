"""What the normalizers of the couriers' Bitrix24 objects (tasks, smart-process items, deals)
read the same way: record keys, our canonical id written into a record, versions, users,
money and the ``*_fields`` maps of the settings. Pure; no TOPICS (not a normalizer itself).

Records are the get answers as the enrichment publishes them (stages/enrich/entities.py) plus
``_event`` and ``_fetched_at``; a deleted object arrives as no value, which the entity sink
hands over as ``{"_deleted": true, "_key": "task:42"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from mmstream.models.base import derived_id
from mmstream.models.lines import MONEY_SCALE
from stages.normalize.oddities import Unnormalizable, b24_datetime, decimal, integer, text
from stages.normalize.registry import Context


def is_tombstone(value: Any) -> bool:
    """Whether the raw record says the object is gone (no value, or the sink's stand-in)."""
    return value is None or (isinstance(value, dict) and value.get("_deleted") is True)


def record_of(value: Any) -> dict[str, Any]:
    """The record as a JSON object, or Unnormalizable."""
    if not isinstance(value, dict):
        raise Unnormalizable(f"expected a JSON object, got {type(value).__name__}")
    return value


def positive_id(value: Any, field: str) -> int:
    """A Bitrix24 id (number or string) that must be there."""
    number = integer(value, field)
    if number is None or number < 1:
        raise Unnormalizable(f"{field}: needs a positive id, got {str(value)[:40]!r}")
    return number


def our_id(record: Mapping[str, Any], field: str) -> UUID | None:
    """Our canonical id written into the record (XML_ID / ORIGIN_ID / a UF field), or None.

    Empty, or not a GUID (the portal's own value, another integration's id): not ours.
    """
    raw = text(record.get(field))
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None


def version(record: Mapping[str, Any], field: str, ctx: Context) -> dict[str, Any]:
    """``version`` (the modification time as the portal wrote it) and ``source_stamp``."""
    raw = text(record.get(field))
    if not raw:
        raise Unnormalizable(f"{field}: missing (it is the version)")
    return {
        "source": "bitrix24",
        "version": raw,
        "source_stamp": b24_datetime(raw, ctx.portal_tz, field),
    }


def user_ref(value: Any, field: str) -> UUID | None:
    """The canonical employee of a Bitrix24 user id (``user:7``); 0/empty -> None.

    Derived: the crosswalk aliases it to the 1С user once the two are known to match.
    """
    number = integer(value, field)
    if number is None or number == 0:
        return None
    return derived_id("employee", "bitrix24", f"user:{number}")


def money(value: Any, field: str) -> tuple[Decimal | None, str]:
    """A Bitrix24 money field ``"100|RUB"`` (or a bare number) -> (amount, currency)."""
    amount = decimal(value, field, MONEY_SCALE)
    if amount is None:
        return None, ""
    _, _, currency = str(value).partition("|")
    return amount, currency.strip().upper()


def mapped(record: Mapping[str, Any], fields: Mapping[str, str], name: str) -> Any:
    """The value of canonical field ``name`` through a settings map; None when unmapped.

    A multiple field answers a list: its first value counts.
    """
    source = fields.get(name)
    if not source:
        return None
    value = record.get(source)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def mapped_text(record: Mapping[str, Any], fields: Mapping[str, str], name: str) -> str:
    """A mapped text field ("" when unmapped or empty)."""
    return text(mapped(record, fields, name))


def mapped_time(
    record: Mapping[str, Any], fields: Mapping[str, str], name: str, ctx: Context
) -> datetime | None:
    """A mapped date-time field, aware (no offset: the portal's zone)."""
    return b24_datetime(mapped(record, fields, name), ctx.portal_tz, fields.get(name, name))


def mapped_guid(record: Mapping[str, Any], fields: Mapping[str, str], name: str) -> UUID | None:
    """A mapped field holding a 1С GUID (the all-zero GUID and empty: None)."""
    raw = text(mapped(record, fields, name))
    if not raw:
        return None
    try:
        found = UUID(raw)
    except ValueError as exc:
        raise Unnormalizable(f"{fields[name]}: not a 1С GUID: {raw[:60]!r}") from exc
    return None if found.int == 0 else found


def stage_outcome(stage: str) -> str | None:
    """``success`` / ``failure`` for a final stage (``DT133_10:SUCCESS``, ``C3:WON``,
    ``C3:LOSE``, ``WON``), else None."""
    tail = stage.rsplit(":", 1)[-1].upper()
    if tail in ("SUCCESS", "WON"):
        return "success"
    if tail in ("FAIL", "LOSE"):
        return "failure"
    return None
