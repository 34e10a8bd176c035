"""PHP's array conventions on the wire: bracketed form keys in, ``json_encode`` out."""

from __future__ import annotations

import re
from typing import Any


def php_parse(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """PHP-style nesting: ``fields[NAME]=x&select[]=ID`` → {"fields": {...}, "select": [...]}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        if not head or (rest and not rest.endswith("]")):
            root[key] = value
            continue
        parts = [head] + (re.findall(r"\[([^\]]*)\]", "[" + rest) if rest else [])
        node = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(sum(1 for k in node if str(k).isdigit()))
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return {k: _listify(v) for k, v in root.items()}


def php_array(mapping: dict[str, Any]) -> dict[str, Any] | list[Any]:
    """A map as PHP's ``json_encode`` writes an array: keyed ``0..n-1`` or empty -> a list."""
    # Which is why real batch answers show result_error as a list that cannot be matched
    # to commands.
    if not mapping:
        return []
    keys = list(mapping)
    if keys == [str(i) for i in range(len(keys))]:
        return [mapping[k] for k in keys]
    return mapping


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and list(value) == [str(i) for i in range(len(value))]:
            return list(value.values())
    return value
