"""Writing OData v3 query strings for 1С: options, literals, key filters and the virtual
tables of accumulation registers. Pure functions.

Virtual tables (1С's standard OData interface): ``AccumulationRegister_<name>/Balance(…)``
with the parameters ``Period`` (datetime), ``Condition`` and ``Dimensions`` (strings);
``/Turnovers(…)`` and ``/BalanceAndTurnovers(…)`` with ``StartPeriod``, ``EndPeriod``,
``Condition`` and ``Dimensions``. A parameter is ``Name=datetime'YYYY-MM-DDTHH:MM:SS'`` or
``Name='text'`` (a quote inside doubled), separated by commas, e.g.
``…/Balance(Period=datetime'2026-12-01T00:00:00', Condition='Склад_Key eq guid''…''',
Dimensions='Склад,Номенклатура')``. :func:`virtual_table` writes one and
:func:`parse_virtual_table` reads one back (the emulator serves them with it); anything
else, or a parameter the table does not have, is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

# An entity set name goes into the URL path: letters (Cyrillic too), digits and '_' only.
_ENTITY_SET_RE = re.compile(r"^[^\W\d]\w*$")
_NAME = r"[^\W\d]\w*"
_VIRTUAL_RE = re.compile(
    rf"^(?P<set>AccumulationRegister_{_NAME})/(?P<table>{_NAME})"
    r"(?:\((?P<params>.*)\))?$",
    re.DOTALL,
)
# One parameter at the head of the rest of the list: Name=datetime'…' or Name='…''…'.
_PARAM_RE = re.compile(
    r"\s*(?P<name>[A-Za-z]+)\s*=\s*(?:datetime'(?P<moment>[^']*)'"
    r"|'(?P<text>(?:[^']|'')*)')\s*(?P<sep>,|$)",
    re.DOTALL,
)
_MOMENT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_DIMENSION_LIST_RE = re.compile(rf"^{_NAME}(?:,{_NAME})*$")
# Control characters have no business in a condition; a NUL or newline in a URL is a trick.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PERIODS = {
    "Balance": ("Period",),
    "Turnovers": ("StartPeriod", "EndPeriod"),
    "BalanceAndTurnovers": ("StartPeriod", "EndPeriod"),
}
_TEXTS = ("Condition", "Dimensions")
# A virtual table's path keeps these literal (1С reads the parentheses, quotes, commas and
# '='); everything else — spaces, '&', '?', '#', '/', '%', Cyrillic — is percent-encoded.
_SAFE_PARAMS = "_(),='"


@dataclass(frozen=True)
class VirtualTable:
    """A virtual table of an accumulation register and its parameters (None: not given)."""

    entity_set: str
    table: str
    moments: tuple[tuple[str, str], ...] = ()
    condition: str | None = None
    dimensions: tuple[str, ...] | None = None

    @property
    def text(self) -> str:
        """The table as written in a URL path, unescaped: the canonical form."""
        params = [f"{name}=datetime'{value}'" for name, value in self.moments]
        if self.condition is not None:
            params.append(f"Condition={string_literal(self.condition)}")
        if self.dimensions is not None:
            params.append(f"Dimensions={string_literal(','.join(self.dimensions))}")
        return f"{self.entity_set}/{self.table}({','.join(params)})"

    def moment(self, name: str) -> str | None:
        """A datetime parameter's value (``Period``, ``StartPeriod``, ``EndPeriod``)."""
        return dict(self.moments).get(name)


def virtual_table(
    entity_set: str,
    table: str = "Balance",
    *,
    condition: str | None = None,
    dimensions: tuple[str, ...] | list[str] | None = None,
    **moments: datetime | str,
) -> str:
    """``<set>/<table>(…)`` of an accumulation register with its parameters quoted, or
    ValueError for a table or parameter 1С's interface does not have. ``moments``:
    ``Period`` (Balance), ``StartPeriod``/``EndPeriod`` (Turnovers, BalanceAndTurnovers),
    1С datetimes without a zone."""
    written = tuple(
        (name, value.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(value, datetime) else value)
        for name, value in moments.items()
    )
    vt = VirtualTable(
        entity_set, table, written, condition, tuple(dimensions) if dimensions is not None else None
    )
    return _checked(vt).text


def parse_virtual_table(path: str) -> VirtualTable | None:
    """The virtual table a path names; None when it names none (a plain entity set name);
    ValueError when it tries to and is not one 1С's interface serves."""
    if _ENTITY_SET_RE.match(path):
        return None
    match = _VIRTUAL_RE.match(path)
    if match is None:
        raise ValueError(
            f"not an OData entity set or a virtual table of an AccumulationRegister_ set: {path!r}"
        )
    moments: list[tuple[str, str]] = []
    texts: dict[str, str] = {}
    rest = (match["params"] or "").strip()
    while rest:
        found = _PARAM_RE.match(rest)
        if found is None:
            raise ValueError(f"cannot read the parameters of {match['table']} at {rest[:30]!r}")
        name = found["name"]
        if name in texts or name in dict(moments):
            raise ValueError(f"parameter {name} is given twice")
        if found["moment"] is not None:
            moments.append((name, found["moment"]))
        elif name in _TEXTS:
            texts[name] = found["text"].replace("''", "'")
        else:
            raise ValueError(
                f"{match['table']} has no string parameter {name} ({', '.join(_TEXTS)})"
            )
        rest = rest[found.end() :]
        if found["sep"] == "," and not rest.strip():
            raise ValueError(f"the parameters of {match['table']} end with a comma")
    dims = texts.get("Dimensions")
    vt = VirtualTable(
        match["set"],
        match["table"],
        tuple(moments),
        texts.get("Condition"),
        tuple(d.strip() for d in dims.split(",")) if dims is not None else None,
    )
    return _checked(vt)


def _checked(vt: VirtualTable) -> VirtualTable:
    if not re.match(rf"^AccumulationRegister_{_NAME}$", vt.entity_set):
        raise ValueError(f"virtual tables are of AccumulationRegister_ sets, not {vt.entity_set!r}")
    periods = _PERIODS.get(vt.table)
    if periods is None:
        raise ValueError(
            f"not a virtual table of an accumulation register: {vt.table!r} "
            f"(one of {', '.join(_PERIODS)})"
        )
    for name, value in vt.moments:
        if name not in periods:
            raise ValueError(f"{vt.table} has no datetime parameter {name} ({', '.join(periods)})")
        if not _MOMENT_RE.match(value):
            raise ValueError(f"{name}: expected datetime'YYYY-MM-DDTHH:MM:SS', got {value!r}")
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a calendar date") from None
    if vt.condition is not None and _CONTROL_RE.search(vt.condition):
        raise ValueError("Condition: control characters are not allowed")
    if vt.dimensions is not None and not _DIMENSION_LIST_RE.match(",".join(vt.dimensions)):
        raise ValueError(
            "Dimensions: expected dimension names separated by commas, got "
            f"{','.join(vt.dimensions)!r}"
        )
    return vt


def entity_set_path(entity_set: str) -> str:
    """The URL path of an entity set, or of a virtual table of an accumulation register
    (its parameters re-quoted, the rest percent-encoded); ValueError for a name that could
    escape it."""
    vt = parse_virtual_table(entity_set)
    if vt is None:
        return quote(entity_set, safe="_")
    return (
        quote(vt.entity_set, safe="_") + "/" + quote(vt.text.partition("/")[2], safe=_SAFE_PARAMS)
    )


def query_string(**options: Any) -> str:
    """``$format=json&$filter=…``: options whose value is None are left out.

    The ``$`` of option names stays literal (some 1С publications do not decode ``%24``);
    values are percent-encoded as UTF-8.
    """
    parts = [
        f"${name}={quote(str(value), safe=',()')}"
        for name, value in options.items()
        if value is not None
    ]
    return "&".join(parts)


def string_literal(value: str) -> str:
    """An OData string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def key_filter(ident: dict[str, Any]) -> str:
    """A ``$filter`` that selects one record by its identifying fields.

    References (``*_Key``) are GUID literals and ``Period`` a datetime literal, as 1С types
    them; a filter on a reference written as a plain string would match nothing.
    """
    terms = []
    for field, value in ident.items():
        if field.endswith("_Key"):
            terms.append(f"{field} eq guid{string_literal(str(value))}")
        elif field == "Period":
            terms.append(f"{field} eq datetime{string_literal(str(value))}")
        else:
            terms.append(f"{field} eq {string_literal(str(value))}")
    return " and ".join(terms)
