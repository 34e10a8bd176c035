"""What every 1С catalog normalizer reads the same way: identity, version, deletion, the
common attributes, contact information and which of several catalogs sharing one raw topic
a record comes from. Pure; no TOPICS (not a normalizer itself).

Shapes: standard OData v3 / our JSON push (see connectors/onec/validation.py). A record with
``"_deleted": true`` is what is left of an object that vanished from 1С: identity and
version only, so everything but the identity is left at the model's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from stages.normalize.oddities import Unnormalizable, line_number, ref, text, yes_no

#: Where a record may name its 1С object explicitly (``odata.metadata`` of a single entity:
#: ``…/$metadata#Catalog_Партнеры/@Element``; ``odata.type``: ``StandardODATA.Catalog_…``;
#: ``_object``: the name our push extension may add).
_OBJECT_FIELDS = ("_object", "odata.type", "odata.metadata")

#: 1С ЮрФизЛицо (Контрагенты, Организации: ЮридическоеФизическоеЛицо; УТ 11 Партнеры:
#: КомпанияЧастноеЛицо) -> canonical legal form.
LEGAL_FORMS = {
    "ЮрЛицо": "legal_entity",
    "ФизЛицо": "individual",
    "ИндивидуальныйПредприниматель": "entrepreneur",
    "ЮрЛицоНеРезидент": "foreign_legal_entity",
    "ГосударственныйОрган": "government",
    "Компания": "legal_entity",
    "ЧастноеЛицо": "individual",
}


def record_of(value: Any) -> dict[str, Any]:
    """The record as a JSON object, or Unnormalizable."""
    if not isinstance(value, dict):
        raise Unnormalizable(f"expected a JSON object, got {type(value).__name__}")
    return value


def is_deletion(record: Mapping[str, Any]) -> bool:
    """Whether the record is a deletion record (the object vanished from 1С)."""
    return record.get("_deleted") is True


def identity(record: Mapping[str, Any]) -> dict[str, Any]:
    """``id``, ``source``, ``version``, ``deleted`` and ``external_ids`` of a catalog record."""
    guid = ref(record.get("Ref_Key"), "Ref_Key")
    if guid is None:
        raise Unnormalizable("Ref_Key: missing or the empty reference")
    version = text(record.get("DataVersion"))
    if not version:
        raise Unnormalizable("DataVersion: missing")
    marked = yes_no(record.get("DeletionMark"), "DeletionMark")
    return {
        "id": guid,
        "source": "onec",
        "version": version,
        "deleted": is_deletion(record) or bool(marked),
        "external_ids": {"onec": str(guid)},
    }


def catalog_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """Code, name and hierarchy every catalog item has (``parent_id`` of the same entity)."""
    return {
        "code": text(record.get("Code")),
        "name": text(record.get("Description")),
        "parent_id": ref(record.get("Parent_Key"), "Parent_Key"),
        "is_folder": bool(yes_no(record.get("IsFolder"), "IsFolder")),
    }


def first_ref(record: Mapping[str, Any], *fields: str) -> UUID | None:
    """The first filled reference among ``fields`` (УТ 11 and УТ 10.3 names of one thing)."""
    for name in fields:
        found = ref(record.get(name), name)
        if found is not None:
            return found
    return None


def first_text(record: Mapping[str, Any], *fields: str) -> str:
    """The first non-empty text among ``fields``."""
    for name in fields:
        found = text(record.get(name))
        if found:
            return found
    return ""


def legal_form(value: Any) -> str:
    """1С ЮрФизЛицо -> canonical legal form; an unknown value stays as 1С names it."""
    raw = text(value)
    return LEGAL_FORMS.get(raw, raw)


def object_name(record: Mapping[str, Any]) -> str | None:
    """The 1С object the record names itself as (``Партнеры``), if it does."""
    for name in _OBJECT_FIELDS:
        raw = record.get(name)
        if not isinstance(raw, str) or not raw:
            continue
        tail = raw.split("#", 1)[-1].split("/", 1)[0].removeprefix("StandardODATA.")
        return tail.removeprefix("Catalog_") or None
    return None


def object_kind(
    record: Mapping[str, Any],
    names: Mapping[str, str],
    markers: Mapping[str, tuple[str, ...]],
    what: str,
) -> str:
    """Which catalog of several sharing one raw topic the record comes from, as a kind.

    An explicit object name (``names``: 1С object -> kind) decides; otherwise the fields only
    one of the catalogs has (``markers``: kind -> fields). None or several matching is
    refused: the record does not say what it is, and guessing would file it wrongly.
    """
    named = object_name(record)
    if named is not None:
        if named not in names:
            raise Unnormalizable(
                f"{what}: the record names 1С object {named!r}, not one of {', '.join(names)}"
            )
        return names[named]
    found = [kind for kind, fields in markers.items() if any(f in record for f in fields)]
    if len(found) != 1:
        hint = "; ".join(f"{k}: {', '.join(f)}" for k, f in markers.items())
        raise Unnormalizable(
            f"{what}: cannot tell which 1С catalog the record is from "
            f"(matched {found or 'none'}); expected the fields of exactly one "
            f"({hint}) or odata.metadata / _object"
        )
    return found[0]


@dataclass(frozen=True)
class ContactInfo:
    """A catalog's КонтактнаяИнформация, by type, in line order."""

    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()


_PHONE_TYPES = {"Телефон", "Факс"}
_EMAIL_TYPES = {"АдресЭлектроннойПочты"}
_ADDRESS_TYPES = {"Адрес"}


def contact_info(record: Mapping[str, Any]) -> ContactInfo:
    """The КонтактнаяИнформация tabular section (``Тип``, ``Представление``, ``НомерТелефона``,
    ``АдресЭП``) -> phones, e-mails, addresses; lines of other types are ignored."""
    lines = record.get("КонтактнаяИнформация")
    if lines in (None, "", [], {}):
        return ContactInfo()
    if not isinstance(lines, list):
        raise Unnormalizable("КонтактнаяИнформация: a tabular section must be a list")
    rows = []
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            raise Unnormalizable(f"КонтактнаяИнформация.{index}: a line must be an object")
        rows.append((line_number(line.get("LineNumber")), line))
    phones: list[str] = []
    emails: list[str] = []
    addresses: list[str] = []
    for _, line in sorted(rows, key=lambda row: row[0]):
        kind = text(line.get("Тип"))
        shown = text(line.get("Представление"))
        if kind in _PHONE_TYPES:
            value = shown or text(line.get("НомерТелефона"))
            target = phones
        elif kind in _EMAIL_TYPES:
            value = text(line.get("АдресЭП")) or shown
            target = emails
        elif kind in _ADDRESS_TYPES:
            value, target = shown, addresses
        else:
            continue
        if value and value not in target:
            target.append(value)
    return ContactInfo(tuple(phones), tuple(emails), tuple(addresses))
