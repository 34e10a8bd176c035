"""OData query options as the 1С emulator evaluates them: ``$filter``, ``$orderby``, paging.

The subset 1С's standard interface is used with here: comparisons (``eq ne gt ge lt le``)
of a field with a literal (``guid'…'``, ``datetime'…'``, ``'text'``, numbers, ``true``,
``false``, ``null``), combined with ``and``, ``or``, ``not`` and parentheses; and the Balance
virtual table of an accumulation register computed from its movements (:func:`balance_rows`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from connectors.errors import ConnectorError

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<paren>[()])
  | (?P<typed>(?:guid|datetime)'[^']*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[^\W\d]\w*)
)""",
    re.VERBOSE,
)
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_CONSTANTS = {"true": True, "false": False, "null": None}


class ODataQueryError(ConnectorError):
    """The emulator cannot read a query option (1С answers such queries with HTTP 400)."""

    code = "onec_odata_query"


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ODataQueryError(f"cannot read $filter at {text[pos : pos + 20]!r}")
        out.append((match.lastgroup or "", match.group(match.lastgroup or 0)))
        pos = match.end()
    return out


def _literal(kind: str, token: str) -> tuple[Any, Callable[[Any], Any]]:
    """(value, how to read a record's field for comparing with it)."""
    if kind == "typed":
        prefix, value = token.split("'", 1)
        if prefix == "guid":
            return value[:-1].lower(), lambda v: None if v is None else str(v).lower()
        return value[:-1], lambda v: None if v is None else str(v)
    if kind == "string":
        return token[1:-1].replace("''", "'"), lambda v: v
    if kind == "number":
        return float(
            token
        ), lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    if kind == "word" and token in _CONSTANTS:
        return _CONSTANTS[token], lambda v: v
    raise ODataQueryError(f"expected a literal in $filter, got {token!r}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ODataQueryError("$filter ends too early")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> Predicate:
        return self.chain("or", self.term, any)

    def term(self) -> Predicate:
        return self.chain("and", self.factor, all)

    def chain(
        self, word: str, operand: Callable[[], Predicate], combine: Callable[[Any], bool]
    ) -> Predicate:
        parts = [operand()]
        while self.peek() == word:
            self.take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else (lambda r: combine(p(r) for p in parts))

    def factor(self) -> Predicate:
        kind, word = self.take()
        if word == "not":
            inner = self.factor()
            return lambda r: not inner(r)
        if word == "(":
            inner = self.expr()
            if self.take()[1] != ")":
                raise ODataQueryError("unbalanced parentheses in $filter")
            return inner
        if kind != "word":
            raise ODataQueryError(f"expected a field name in $filter, got {word!r}")
        op = _COMPARE.get(self.take()[1])
        if op is None:
            raise ODataQueryError(f"expected eq, ne, gt, ge, lt or le after {word!r}")
        value, read = _literal(*self.take())
        return lambda r: _compare(op, read(r.get(word)), value)


def _compare(op: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    if op in (operator.eq, operator.ne):
        return op(left, right)
    try:
        return left is not None and right is not None and op(left, right)
    except TypeError:
        return False


def parse_filter(text: str | None) -> Predicate:
    """A predicate over records for a ``$filter`` expression (None: every record)."""
    if not text or not text.strip():
        return lambda r: True
    parser = _Parser(text)
    predicate = parser.expr()
    if parser.peek() is not None:
        raise ODataQueryError(f"unexpected {parser.peek()!r} in $filter")
    return predicate


def apply_query(
    records: list[dict[str, Any]],
    *,
    filter: str | None = None,
    orderby: str | None = None,
    top: int | None = None,
    skip: int | None = None,
) -> list[dict[str, Any]]:
    """The records selected, ordered and paged as 1С would answer them."""
    rows = [r for r in records if parse_filter(filter)(r)]
    for part in reversed([p.strip() for p in (orderby or "").split(",") if p.strip()]):
        field, _, direction = part.partition(" ")
        if direction.strip() not in ("", "asc", "desc"):
            raise ODataQueryError(f"cannot read $orderby {part!r}")
        rows.sort(key=lambda r, f=field: _sort_key(r.get(f)), reverse=direction.strip() == "desc")
    start = skip or 0
    return rows[start : start + top] if top is not None else rows[start:]


def _sort_key(value: Any) -> tuple[bool, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value is None, value)
    return (value is None, "" if value is None else str(value))


# -- the Balance virtual table of an accumulation register ---------------------------------

EMPTY_REF = "00000000-0000-0000-0000-000000000000"
# Fields of a movement that are neither dimensions nor resources.
_MOVEMENT_SYSTEM = frozenset(
    {
        "Recorder",
        "Recorder_Type",
        "Period",
        "LineNumber",
        "Active",
        "RecordType",
        "RecordSet",
        "DataVersion",
        "odata.metadata",
    }
)
_SIGN = {"Receipt": 1, "Expense": -1}


def movements(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The single movements of stored records: a RecordSet (``Recorder`` + ``RecordSet[]``,
    as the register's entity set holds them) gives its lines, anything else is itself."""
    for doc in records:
        lines = doc.get("RecordSet")
        if isinstance(lines, list):
            head = {k: v for k, v in doc.items() if k != "RecordSet"}
            yield from ({**head, **line} for line in lines if isinstance(line, dict))
        else:
            yield doc


def balance_rows(
    records: Iterable[dict[str, Any]],
    resources: tuple[str, ...],
    *,
    dimensions: tuple[str, ...] | None = None,
    period: str | None = None,
    condition: str | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``<register>/Balance(Period, Condition, Dimensions)`` as 1С computes them.

    Active movements before ``period`` (all without it) that match ``condition`` are summed
    per value of the dimensions: a Receipt adds its resources, an Expense subtracts them; a
    record without RecordType is a balance row (``<resource>Balance``) and adds as it is.
    A row holds the dimensions (``<name>_Key`` for a reference, the empty reference when a
    movement lacks it) and ``<resource>Balance`` of each of the register's ``resources`` the
    records use; rows whose every balance is zero are left out, as 1С leaves them out.
    Without ``dimensions`` the rows are by every dimension the movements carry.
    """
    match = parse_filter(condition)
    taken = [m for m in movements(records) if m.get("Active") is not False and match(m)]
    used = tuple(r for r in resources if any(r in m or f"{r}Balance" in m for m in taken))
    balance_fields = {f"{r}Balance" for r in used}
    totals: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    for move in taken:
        kind = move.get("RecordType")
        if kind is not None and kind not in _SIGN:
            raise ODataQueryError(f"RecordType must be Receipt or Expense, got {kind!r}")
        if period is not None and kind is not None and str(move.get("Period") or "") >= period:
            continue
        if dimensions is None:
            fields = sorted(
                f
                for f in move
                if f not in _MOVEMENT_SYSTEM and f not in used and f not in balance_fields
            )
        else:
            fields = [d if d in move else f"{d}_Key" for d in dimensions]
        key = tuple((f, move.get(f, EMPTY_REF if f.endswith("_Key") else None)) for f in fields)
        row = totals.setdefault(key, {**dict(key), **{f"{r}Balance": Decimal(0) for r in used}})
        for name in used:
            amount = move.get(name) if kind is not None else move.get(f"{name}Balance")
            if isinstance(amount, (int, float)) and not isinstance(amount, bool):
                # Decimal: 0.1 + 0.2 is 0.3 in 1С's fixed-point numbers, not 0.30000000000000004.
                row[f"{name}Balance"] += _SIGN.get(kind, 1) * Decimal(str(amount))
    return [
        {f: _number(v) if f in balance_fields else v for f, v in row.items()}
        for row in totals.values()
        if any(row[f] for f in balance_fields)
    ]


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
