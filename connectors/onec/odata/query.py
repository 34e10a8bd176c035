"""Writing OData v3 query strings for 1С: options, literals and key filters. Pure functions."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

# An entity set name goes into the URL path: letters (Cyrillic too), digits and '_' only.
_ENTITY_SET_RE = re.compile(r"^[^\W\d]\w*$")


def entity_set_path(entity_set: str) -> str:
    """The URL path segment of an entity set, or ValueError for a name that could escape it."""
    if not _ENTITY_SET_RE.match(entity_set):
        raise ValueError(f"not an OData entity set name: {entity_set!r}")
    return quote(entity_set, safe="_")


def query_string(**options: Any) -> str:
    """``$format=json&$filter=…``: options whose value is None are left out.

    The ``$`` of option names stays literal (some 1С publications do not decode ``%24``);
    values are percent-encoded as UTF-8.
    """
    parts = [f"${name}={quote(str(value), safe=',()')}" for name, value in options.items()
             if value is not None]
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
