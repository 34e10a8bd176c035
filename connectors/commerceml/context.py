"""The names and dictionaries of an exchange, carried from one file to the next. Pure.

A CommerceML document resolves ids through what was declared before its entries
(:class:`~connectors.commerceml.parser.Context`): property dictionaries
(``Свойства/Свойство/ВариантыЗначений``), price types (``ТипыЦен``), warehouses (``Склады``)
and groups. CommerceML 3.x sends one package as several files — ``import.xml`` with the
``Классификатор`` (in 3.x it declares the price types and warehouses too), then
``offers.xml``, ``prices.xml``, ``rests.xml``, each imported by its own request — and a
"changes only" package (``СодержитТолькоИзменения="true"``) declares only what changed since
the last exchange: the rest is what the site received before. So the exchange keeps the
names of a session (and the last full classifier of each catalog) and seeds each later
file's context with them (connectors/commerceml/exchange.py).

Only the names travel: what a file says about itself (its sections, classifier Ид,
"changes only") never does. Later declarations win; a property's dictionary is the union
of what was declared (a changes-only classifier re-declares a property with its new values).
"""

from __future__ import annotations

import json
from typing import Any

from connectors.commerceml.parser import Context, PriceType, Property

FORMAT = 1


def names(ctx: Context) -> Context:
    """A fresh context holding only ``ctx``'s names (a copy: the parser fills it in place)."""
    return Context(
        groups=dict(ctx.groups),
        group_parents=dict(ctx.group_parents),
        properties=dict(ctx.properties),
        price_types=dict(ctx.price_types),
        warehouses=dict(ctx.warehouses),
    )


def merge(base: Context, top: Context) -> Context:
    """``base``'s names overlaid with ``top``'s (a new context; neither is changed)."""
    out = names(base)
    out.groups.update(top.groups)
    out.group_parents.update(top.group_parents)
    for pid, prop in top.properties.items():
        known = out.properties.get(pid)
        if known is None:
            out.properties[pid] = prop
        else:
            out.properties[pid] = Property(
                prop.name or known.name,
                {**known.values, **prop.values},
                prop.value_type or known.value_type,
            )
    out.price_types.update(top.price_types)
    out.warehouses.update(top.warehouses)
    return out


def is_empty(ctx: Context) -> bool:
    """Nothing to carry."""
    return not (ctx.groups or ctx.properties or ctx.price_types or ctx.warehouses)


def to_json(ctx: Context) -> dict[str, Any]:
    """The names as a JSON object (stored in PostgreSQL as jsonb)."""
    return {
        "format": FORMAT,
        "groups": ctx.groups,
        "group_parents": ctx.group_parents,
        "properties": {
            pid: {"name": p.name, "type": p.value_type, "values": p.values}
            for pid, p in ctx.properties.items()
        },
        "price_types": {
            tid: {"name": t.name, "currency": t.currency} for tid, t in ctx.price_types.items()
        },
        "warehouses": ctx.warehouses,
    }


def dump(ctx: Context) -> str:
    """Compact JSON text of the names; its UTF-8 length is what the size cap counts."""
    return json.dumps(to_json(ctx), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def from_json(data: dict[str, Any] | None) -> Context:
    """The names stored by :func:`to_json`; an empty context for None or an unknown format
    (names are a help to resolve ids, never a reason to refuse a file)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return Context()
    return Context(
        groups=_strings(data.get("groups")),
        group_parents=_strings(data.get("group_parents")),
        properties={
            str(pid): Property(
                str(p.get("name") or ""), _strings(p.get("values")), str(p.get("type") or "")
            )
            for pid, p in (data.get("properties") or {}).items()
            if isinstance(p, dict)
        },
        price_types={
            str(tid): PriceType(str(t.get("name") or ""), str(t.get("currency") or ""))
            for tid, t in (data.get("price_types") or {}).items()
            if isinstance(t, dict)
        },
        warehouses=_strings(data.get("warehouses")),
    )


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}
