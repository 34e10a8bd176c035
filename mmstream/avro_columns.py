"""Avro schema -> column types of another system (pure): one walk over the schema, the
target's spelling in a :class:`Dialect`.

Used by ``mmctl export`` (DuckDB / Parquet columns) and by the ClickHouse DDL generator
(scripts/gen_clickhouse_ddl.py). A named type (record, enum, fixed) is remembered where it
is defined, so a later reference by its name maps like its definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dialect:
    """How one target spells each Avro type."""

    primitives: Mapping[str, str]
    logical: Mapping[tuple[str, str], str]
    #: ``[..]`` union -> its column, given the union and a function mapping one branch.
    union: Callable[[list, Callable[[Any], str]], str]
    #: decimal(precision, scale)
    decimal: Callable[[int, int], str]
    #: record members as (name, column type) -> the record's column type
    record: Callable[[list[tuple[str, str]]], str]
    enum: Callable[[dict], str]
    fixed: Callable[[dict], str]
    array: Callable[[str], str]
    map: Callable[[str], str]
    #: the exception an unknown type raises
    unknown: Callable[[str], Exception] = ValueError


def column_type(avro: Any, dialect: Dialect, named: dict[str, str] | None = None) -> str:
    """The column type ``dialect`` gives the Avro type ``avro``."""
    named = {} if named is None else named

    def walk(node: Any) -> str:
        return column_type(node, dialect, named)

    if isinstance(avro, str):
        if avro in dialect.primitives:
            return dialect.primitives[avro]
        for name in (avro, avro.rsplit(".", 1)[-1]):
            if name in named:
                return named[name]
        raise dialect.unknown(f"unknown Avro type {avro!r}")
    if isinstance(avro, list):
        return dialect.union(avro, walk)
    kind, logical = avro.get("type"), avro.get("logicalType")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        out = dialect.decimal(int(avro["precision"]), int(avro.get("scale", 0)))
    elif (kind, logical) in dialect.logical:
        out = dialect.logical[(kind, logical)]
    elif kind == "record":
        out = dialect.record([(f["name"], walk(f["type"])) for f in avro["fields"]])
    elif kind == "enum":
        out = dialect.enum(avro)
    elif kind == "fixed":
        out = dialect.fixed(avro)
    elif kind == "array":
        out = dialect.array(walk(avro["items"]))
    elif kind == "map":
        out = dialect.map(walk(avro["values"]))
    elif isinstance(kind, (str, list, dict)):
        out = walk(kind)  # {"type": "string"} and the like
    else:
        raise dialect.unknown(f"unknown Avro type {avro!r}")
    if kind in ("record", "enum", "fixed") and "name" in avro:
        named[avro["name"]] = out
        if avro.get("namespace"):
            named[f"{avro['namespace']}.{avro['name']}"] = out
    return out


def columns(schema: dict, dialect: Dialect) -> list[tuple[str, str]]:
    """(column, type) of every top-level field of a record schema, in schema order."""
    named: dict[str, str] = {}
    return [(f["name"], column_type(f["type"], dialect, named)) for f in schema["fields"]]
