"""How list methods read their parameters: filter operators, order, ``start`` paging, and
the loose value coercions a portal applies to what arrives as strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from devstack.emulators.bitrix24.envelope import legacy_error

PAGE_SIZE = 50

_FILTER_OP = re.compile(r"^(!=%|!%=|!%|=%|%=|>=|<=|!=|!|>|<|%|=)?(.+)$")


def as_int(value: Any) -> int | None:
    """``value`` as an int (strings included), or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def as_list(value: Any) -> list[Any]:
    """A list parameter, whether sent as a list, a PHP map or a single value."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    return [value]


def order_param(value: Any) -> dict[str, Any] | None:
    """The ``order`` parameter, or None when absent or not a map."""
    return value if isinstance(value, dict) and value else None


def paginate(rows: list[Any], start: Any) -> tuple[list[Any], int | None, int | None]:
    """(page, total, next) of ``rows`` from offset ``start``."""
    offset = as_int(start) or 0
    if offset == -1:
        # start=-1 skips counting, as the portal does for fast bulk reads.
        return rows[:PAGE_SIZE], None, None
    offset = max(offset, 0)
    page = rows[offset : offset + PAGE_SIZE]
    nxt = offset + PAGE_SIZE if offset + PAGE_SIZE < len(rows) else None
    return page, len(rows), nxt


def renamed_filter(raw: Any, rename: Callable[[str], str]) -> dict[str, Any]:
    """A list method's ``filter`` with field names mapped to the store's (operators kept);
    a legacy error when it is not a map."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise legacy_error("Parameter 'filter' must be array.")
    out = {}
    for key, value in raw.items():
        op, name = split_op(key)
        out[op + rename(name)] = value
    return out


def split_op(key: Any) -> tuple[str, str]:
    """("", "xmlId") for "xmlId", (">=", "id") for ">=id"."""
    match = _FILTER_OP.match(str(key))
    if match is None:
        return "", str(key)
    return match.group(1) or "", match.group(2)


def matches(product: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Whether ``product`` passes every condition of a (camelCase) filter."""
    for key, expected in flt.items():
        op, name = split_op(key)
        op = op or "="
        actual = product.get(name)
        values = expected if isinstance(expected, list) else [expected]
        if op == "=":
            ok = any(_equal(actual, v) for v in values)
        elif op in ("!", "!="):
            ok = not any(_equal(actual, v) for v in values)
        elif op in (">", ">=", "<", "<="):
            ok = _compare(actual, expected, op)
        elif op == "%":
            ok = str(expected).lower() in str(actual or "").lower()
        elif op == "!%":
            ok = str(expected).lower() not in str(actual or "").lower()
        elif op in ("=%", "%="):
            ok = _like(actual, str(expected))
        else:  # "!=%", "!%="
            ok = not _like(actual, str(expected))
        if not ok:
            return False
    return True


def sort_key(value: Any) -> tuple[int, Any]:
    """Sort key of a field value: numbers, then dates (by instant), then text
    case-insensitively, then nulls."""
    number = _number(value)
    if number is not None:
        return (0, number)
    if value is None:
        return (3, "")
    instant = as_instant(value)
    if instant is not None:
        return (1, instant)
    return (2, str(value).lower())


def sort_rows(rows: list[dict[str, Any]], order: dict[str, Any]) -> list[dict[str, Any]]:
    """``rows`` sorted by an ``order`` map of field -> ASC/DESC (first field first)."""
    # Stable sorts applied last key first give a multi-key order with mixed directions.
    for name, direction in reversed(list(order.items())):
        rows.sort(
            key=lambda row, n=name: sort_key(row.get(n)), reverse=str(direction).upper() == "DESC"
        )
    return rows


def as_instant(value: Any) -> float | None:
    """An ISO 8601 date-time (as the portal writes them) as epoch seconds, else None.

    Portal dates carry the portal's offset; comparing instants rather than strings keeps
    ``>DATE_MODIFY`` filters right whatever offset a client sends back.
    """
    if not isinstance(value, str) or len(value) < 10 or value[4:5] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.astimezone()).timestamp()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict) and "value" in expected:
        expected = expected["value"]
    if actual is None or expected is None:
        return (actual or "") == (expected or "")
    if isinstance(actual, str) and isinstance(expected, str):
        if actual == expected:
            return True
        # The same instant written with another offset is the same date.
        instant = as_instant(actual)
        return instant is not None and instant == as_instant(expected)
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return a == b
    return str(actual) == str(expected)


def _compare(actual: Any, expected: Any, op: str) -> bool:
    if isinstance(expected, dict) and "value" in expected:
        expected = expected["value"]
    if actual is None:
        return False
    a, b = _number(actual), _number(expected)
    if a is None or b is None:
        a, b = as_instant(actual), as_instant(expected)
    left, right = (a, b) if a is not None and b is not None else (str(actual), str(expected))
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]


def _like(actual: Any, pattern: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("%")) + "$"
    return re.match(regex, "" if actual is None else str(actual), re.IGNORECASE | re.S) is not None
