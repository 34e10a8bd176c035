"""OData query options as the 1С emulator evaluates them: ``$filter``, ``$orderby``, paging.

The subset 1С's standard interface is used with here: comparisons (``eq ne gt ge lt le``)
of a field with a literal (``guid'…'``, ``datetime'…'``, ``'text'``, numbers, ``true``,
``false``, ``null``), combined with ``and``, ``or``, ``not`` and parentheses.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from connectors.errors import ConnectorError

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"""\s*(?:
    (?P<paren>[()])
  | (?P<typed>(?:guid|datetime)'[^']*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[^\W\d]\w*)
)""", re.VERBOSE)
_COMPARE = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
            "lt": operator.lt, "le": operator.le}
_CONSTANTS = {"true": True, "false": False, "null": None}


class ODataQueryError(ConnectorError):
    """The emulator cannot read a query option (1С answers such queries with HTTP 400)."""

    code = "onec_odata_query"


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ODataQueryError(f"cannot read $filter at {text[pos:pos + 20]!r}")
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
        return float(token), lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
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

    def chain(self, word: str, operand: Callable[[], Predicate],
              combine: Callable[[Any], bool]) -> Predicate:
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


def apply_query(records: list[dict[str, Any]], *, filter: str | None = None, orderby: str | None = None,
                top: int | None = None, skip: int | None = None) -> list[dict[str, Any]]:
    """The records selected, ordered and paged as 1С would answer them."""
    rows = [r for r in records if parse_filter(filter)(r)]
    for part in reversed([p.strip() for p in (orderby or "").split(",") if p.strip()]):
        field, _, direction = part.partition(" ")
        if direction.strip() not in ("", "asc", "desc"):
            raise ODataQueryError(f"cannot read $orderby {part!r}")
        rows.sort(key=lambda r, f=field: _sort_key(r.get(f)), reverse=direction.strip() == "desc")
    start = skip or 0
    return rows[start:start + top] if top is not None else rows[start:]


def _sort_key(value: Any) -> tuple[bool, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value is None, value)
    return (value is None, "" if value is None else str(value))
