"""What the Bitrix24 contact and company normalizers read the same way: identity (with the
1С GUID in ``ORIGIN_ID``), version, multi-fields, addresses and tombstones. Pure; no TOPICS.

Records are the legacy ``crm.contact.get`` / ``crm.company.get`` answers as the enrichment
publishes them (UPPER_CASE, ids as strings, see stages/enrich/entities.py), plus ``_event``
and ``_fetched_at``. A deleted entity arrives as a tombstone: no value (the key in ``ce_subject``,
``company:42``; the version ``deleted`` in the headers), or the sink's stand-in for one,
``{"_deleted": true, "_key": "company:42"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from mmstream.models.base import derived_id
from mmstream.models.counterparty import Counterparty
from stages.normalize.oddities import Unnormalizable, b24_datetime, integer, text
from stages.normalize.registry import Context

#: The header the enrichment puts the version in (stages.outbox.relay.VERSION).
VERSION_HEADER = "mm.version"
ENTITY = "counterparty"

_ADDRESS_PARTS = (
    "ADDRESS_POSTAL_CODE",
    "ADDRESS_COUNTRY",
    "ADDRESS_PROVINCE",
    "ADDRESS_REGION",
    "ADDRESS_CITY",
    "ADDRESS",
    "ADDRESS_2",
)


def crm_key(kind: str, ident: Any) -> str:
    """``company:42``: the enrichment's record key and our ``external_ids['bitrix24']`` (a
    contact and a company may share a number, and both are counterparties)."""
    number = integer(ident, "ID")
    if number is None or number < 1:
        raise Unnormalizable(f"ID: a {kind} needs a positive id, got {ident!r}")
    return f"{kind}:{number}"


def counterparty_ref(kind: str, ident: Any) -> UUID | None:
    """The canonical id of a Bitrix24 contact or company named by id (``COMPANY_ID``); the
    sink's crosswalk aliases it when that company carries a 1С GUID. ``0``/empty -> None."""
    number = integer(ident, f"{kind.upper()}_ID")
    if number is None or number == 0:
        return None
    return derived_id(ENTITY, "bitrix24", crm_key(kind, number))


def identity(record: Mapping[str, Any], kind: str, ctx: Context) -> dict[str, Any]:
    """``id``, ``source``, ``version``, ``source_stamp`` and ``external_ids``.

    An ``ORIGIN_ID`` holding a GUID is the 1С counterparty we created the entity from: that
    GUID is the canonical id. Anything else (empty, another integration's id) leaves the
    entity born in Bitrix24, with a derived id.
    """
    key = crm_key(kind, record.get("ID"))
    modified = text(record.get("DATE_MODIFY"))
    if not modified:
        raise Unnormalizable("DATE_MODIFY: missing (it is the version)")
    stamp = b24_datetime(modified, ctx.portal_tz, "DATE_MODIFY")
    origin = _guid(text(record.get("ORIGIN_ID")))
    external = {"bitrix24": key}
    if origin is not None:
        external["onec"] = str(origin)
    return {
        "id": origin or derived_id(ENTITY, "bitrix24", key),
        "source": "bitrix24",
        "version": modified,
        "source_stamp": stamp,
        "external_ids": external,
    }


def is_tombstone(value: Any) -> bool:
    """Whether the raw record says the entity is gone (no value, or the sink's stand-in)."""
    return value is None or (isinstance(value, dict) and value.get("_deleted") is True)


def tombstone(
    value: Mapping[str, Any] | None, headers: Mapping[str, str], kind: str, ctx: Context
) -> Counterparty:
    """A deleted contact/company: its derived id, ``deleted``, the version from the headers
    and ``ce_time`` (when the deletion was seen) as the stamp."""
    subject = str((value or {}).get("_key") or headers.get("ce_subject", ""))
    prefix, _, number = subject.partition(":")
    if prefix != kind:
        raise Unnormalizable(
            f"ce_subject: a {kind} tombstone needs the key '{kind}:<id>', got {subject[:40]!r}"
        )
    key = crm_key(kind, number)
    seen = headers.get("ce_time", "")
    return Counterparty(
        id=derived_id(ENTITY, "bitrix24", key),
        source="bitrix24",
        version=headers.get(VERSION_HEADER) or "deleted",
        source_stamp=b24_datetime(seen, ctx.portal_tz, "ce_time") if seen else None,
        deleted=True,
        external_ids={"bitrix24": key},
    )


def multifield(record: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """``PHONE`` / ``EMAIL``: ``[{"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"}]``, absent, ``[]`` or
    ``""`` when empty -> the values, in order, without repeats."""
    items = record.get(name)
    if items in (None, "", [], {}):
        return ()
    if not isinstance(items, list):
        raise Unnormalizable(f"{name}: expected a list of values, got {type(items).__name__}")
    out: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise Unnormalizable(f"{name}.{index}: expected an object")
        value = text(item.get("VALUE"))
        if value and value not in out:
            out.append(value)
    return tuple(out)


def address(record: Mapping[str, Any]) -> str:
    """The legacy ``ADDRESS*`` fields as one line, general to particular."""
    return ", ".join(part for part in (text(record.get(f)) for f in _ADDRESS_PARTS) if part)


def _guid(raw: str) -> UUID | None:
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None
