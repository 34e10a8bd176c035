"""Canonical model -> PostgreSQL table: the columns every entity table has and how each model
field is stored. Migration 0007 holds the DDL this module generated (``scripts/
gen_entity_ddl.py``); a test fails when a model and its migrated table disagree.

Scalars get typed columns (so SREs and analysts can query them); tabular sections (lines)
and maps are ``jsonb``. Table names are the entity names, always quoted (``return``).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from mmstream.models.base import Canonical

# Bookkeeping columns after the model's own: not part of the canonical content.
SYSTEM_COLUMNS = (
    ("revision", "bigint NOT NULL DEFAULT 1"),
    # Every source that ever wrote the row: a non-owner may fill fields until the owner
    # has written the object (a company born in Bitrix24 stays Bitrix24's until 1С has it).
    ("writers", "text[] NOT NULL DEFAULT '{}'"),
    ("event_id", "uuid NOT NULL"),
    ("stored_at", "timestamptz NOT NULL DEFAULT now()"),  # first stored
    ("changed_at", "timestamptz NOT NULL DEFAULT now()"),  # last real change
)
RESERVED = frozenset(name for name, _ in SYSTEM_COLUMNS)


@dataclass(frozen=True)
class Column:
    """One model field as a table column."""

    name: str
    pg_type: str
    json: bool  # stored as jsonb (lines, maps)
    nullable: bool


def _pg_type(tp: Any) -> tuple[str, bool, bool]:
    """(type, is_json, nullable) of a model annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        pg, is_json, _ = _pg_type(rest[0])
        return pg, is_json, True
    if origin is typing.Annotated:
        return _pg_type(typing.get_args(tp)[0])
    if origin is typing.Literal or tp is str:
        return "text", False, False
    if origin in (tuple, list, dict) or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return "jsonb", True, False
    mapping = {
        bool: "boolean",
        int: "bigint",
        float: "double precision",
        UUID: "uuid",
        Decimal: "numeric",
        datetime: "timestamptz",
        date: "date",
    }
    if tp in mapping:
        return mapping[tp], False, False
    raise TypeError(f"no column type for {tp!r}")


def columns(model: type[Canonical]) -> tuple[Column, ...]:
    """The model's fields as columns, in declaration order."""
    out = []
    for name, info in model.model_fields.items():
        if name in RESERVED:
            raise TypeError(
                f"{model.__name__}.{name}: the name is a bookkeeping column of every "
                f"entity table ({', '.join(sorted(RESERVED))}); rename the field"
            )
        pg, is_json, nullable = _pg_type(info.annotation)
        out.append(Column(name, pg, is_json, nullable))
    return tuple(out)


def ddl(model: type[Canonical]) -> str:
    """``CREATE TABLE`` of the entity (the migration holds this text)."""
    lines = []
    for col in columns(model):
        if col.name == "id":
            lines.append('    "id" uuid PRIMARY KEY')
            continue
        null = "" if col.nullable else " NOT NULL"
        lines.append(f'    "{col.name}" {col.pg_type}{null}')
    lines += [f'    "{name}" {spec}' for name, spec in SYSTEM_COLUMNS]
    return f'CREATE TABLE "{model.ENTITY}" (\n' + ",\n".join(lines) + "\n)"
