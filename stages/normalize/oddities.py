"""The oddities of real 1С and Bitrix24 payloads, each turned into a plain value. Pure.

Every normalizer uses these rather than its own variant, so one oddity has one rule:
* 1С: the all-zero GUID means "no reference"; ``0001-01-01T00:00:00`` means "no date";
  dates carry no zone (wall-clock time of the base); composite references come as
  ``X_Key`` + ``X_Type`` (``StandardODATA.Catalog_Контрагенты``); tabular sections have a
  string ``LineNumber``;
* Bitrix24: numbers and ids as strings, ``"Y"``/``"N"`` booleans, ``[]`` or ``""`` where an
  object or a value is missing, dates with an offset (or without one: the portal's zone).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from mmstream.errors import InvalidRecord
from mmstream.models.bounds import DEFAULT_SCALE, fit_decimal, int_problem, shown, text_problem

EMPTY_REF = UUID(int=0)
EMPTY_DATE = "0001-01-01T00:00:00"


class Unnormalizable(InvalidRecord):
    """A source record cannot become a canonical entity (the reason names the field).
    Permanent: the record goes to the normalize DLQ; fix the source and replay it."""

    code = "unnormalizable"


def ref(value: Any, field: str = "ref") -> UUID | None:
    """A 1С reference: a GUID string, the all-zero GUID or empty -> None."""
    if value in (None, "", [], {}):
        return None
    try:
        return _guid(value) if type(value) is str else _guid(str(value))
    except ValueError as exc:
        raise Unnormalizable(f"{field}: not a GUID: {str(value)[:60]!r}") from exc


@lru_cache(maxsize=1 << 14)
def _guid(text: str) -> UUID | None:
    # One record names the same organization, currency, warehouse and products as the last
    # thousand did: parse each GUID text once (UUIDs are immutable; errors are not cached).
    out = UUID(text)
    return None if out == EMPTY_REF else out


def composite_ref(record: Mapping[str, Any], name: str) -> tuple[UUID | None, str | None]:
    """A 1С composite-type reference ``name`` (or ``name_Key``) + ``name_Type`` -> (id, 1С type name).

    Standard OData names a composite attribute without ``_Key`` (``Субконто`` +
    ``Субконто_Type``). ``StandardODATA.Catalog_Контрагенты`` -> ``Catalog_Контрагенты``; an
    empty id or the type ``StandardODATA.Undefined`` -> (None, None).
    """
    kind = record.get(f"{name}_Type") or record.get(f"{name}_Key@odata.type") or ""
    kind = str(kind).removeprefix("StandardODATA.")
    if kind == "Undefined":
        return None, None
    field = f"{name}_Key" if f"{name}_Key" in record else name
    key = ref(record.get(field), field)
    if key is None:
        return None, None
    return key, kind or None


def onec_datetime(value: Any, tz: ZoneInfo, field: str = "date") -> datetime | None:
    """A 1С date (no zone, wall clock of the base) -> aware datetime; the empty date -> None."""
    if value in (None, "", EMPTY_DATE):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise Unnormalizable(f"{field}: not a 1С date: {str(value)[:40]!r}") from exc
    if parsed.year == 1:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def onec_date(value: Any, tz: ZoneInfo, field: str = "date") -> date | None:
    """A 1С date used as a calendar day -> date; the empty date -> None."""
    moment = onec_datetime(value, tz, field)
    return moment.date() if moment else None


def b24_datetime(value: Any, tz: ZoneInfo, field: str = "date") -> datetime | None:
    """A Bitrix24 date (``2024-01-31T10:00:00+03:00``, or without offset) -> aware datetime."""
    if value in (None, "", [], {}):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise Unnormalizable(f"{field}: not a date: {str(value)[:40]!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def decimal(value: Any, field: str = "number", scale: int = DEFAULT_SCALE) -> Decimal | None:
    """A number as 1С or Bitrix24 sends it (number, ``"12.50"``, ``"12,50"``, ``""``) -> Decimal.

    Floats go through ``str`` so 0.1 stays 0.1; ``"100|RUB"`` (Bitrix24 money fields) -> 100.
    The number must fit the Avro ``decimal(20, scale)`` of its canonical field (``scale``:
    :data:`MONEY_SCALE` for sums, the default 4 for quantities, prices, percents): refused
    here it is named by its source field; digits past the scale are rounded by the model.
    """
    out = _number(value, field)
    if out is None:
        return None
    reason = fit_decimal(out, scale)[1]
    if reason is not None:
        raise Unnormalizable(f"{field}: {reason}")
    return out


def _number(value: Any, field: str) -> Decimal | None:
    if value in (None, "", [], {}):
        return None
    if isinstance(value, bool):
        raise Unnormalizable(f"{field}: a boolean is not a number")
    if isinstance(value, (dict, list)):
        raise Unnormalizable(f"{field}: expected a number, got {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > 128:  # str() of it may even raise
        raise Unnormalizable(f"{field}: {shown(value)} is out of range")
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    text = text.split("|", 1)[0].replace(",", ".")
    try:
        out = Decimal(text)
    except InvalidOperation as exc:
        raise Unnormalizable(f"{field}: not a number: {shown(value)!r}") from exc
    if not out.is_finite():
        raise Unnormalizable(f"{field}: not a finite number: {shown(value)!r}")
    return out


def integer(value: Any, field: str = "id") -> int | None:
    """An id or count sent as a number or a string (``"42"``) -> int; empty -> None.
    Whole numbers beyond 64 bits are refused (Avro long, PostgreSQL bigint)."""
    number = _number(value, field)
    if number is None:
        return None
    if number.adjusted() > 19:  # checked before int(): 1E+999999999 would fill the memory
        raise Unnormalizable(f"{field}: {shown(number)} is outside the 64-bit integer range")
    if number != number.to_integral_value():
        raise Unnormalizable(f"{field}: not a whole number: {shown(value)!r}")
    out = int(number)
    reason = int_problem(out)
    if reason is not None:
        raise Unnormalizable(f"{field}: {reason}")
    return out


def yes_no(value: Any, field: str = "flag") -> bool | None:
    """Bitrix24 ``"Y"``/``"N"`` (and real booleans, ``"1"``/``"0"``) -> bool; empty -> None."""
    if value in (None, "", [], {}):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text in ("Y", "1", "TRUE"):
        return True
    if text in ("N", "0", "FALSE"):
        return False
    raise Unnormalizable(f"{field}: not Y/N: {str(value)[:20]!r}")


def obj(value: Any) -> dict[str, Any] | None:
    """An object field that Bitrix24 sends as ``[]`` (PHP's empty array) when empty -> None."""
    if isinstance(value, dict):
        return value or None
    if value in (None, "", []):
        return None
    raise Unnormalizable(f"expected an object, got {type(value).__name__}")


def text(value: Any) -> str:
    """A string field: None/[] -> ""; stripped; NUL and unpaired surrogates refused
    (PostgreSQL cannot store the one, UTF-8 cannot encode the other)."""
    if value in (None, [], {}):
        return ""
    out = str(value).strip()
    reason = text_problem(out)
    if reason is not None:  # the value shown (escaped) tells the sender which field it is
        raise Unnormalizable(f"text {shown(out)!r} {reason}")
    return out


def line_number(value: Any) -> int:
    """A tabular-section ``LineNumber`` (a string in OData) -> int >= 1."""
    number = integer(value, "LineNumber")
    if number is None or number < 1:
        raise Unnormalizable(f"LineNumber: must be a positive number, got {value!r}")
    return number
