"""Avro schema compatibility, as the Confluent Schema Registry decides it.

``can_read(reader, writer)`` applies the Avro specification's schema-resolution rules (the
same checks as Avro Java's ``SchemaCompatibility``, which Confluent and Karapace use): the
reader can decode everything the writer can produce. ``check(level, new, existing)`` turns a
compatibility level (BACKWARD, FORWARD, FULL, their _TRANSITIVE forms, NONE) into the right
set of ``can_read`` calls. Both return human-readable reasons; an empty list means compatible.

Schemas are the JSON form (dict, list for a union, or a type name string). Pure functions:
no I/O, no registry state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import fastavro

AvroSchema = dict | list | str

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
DEFAULT_LEVEL = "BACKWARD"

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
_KINDS = PRIMITIVES | NAMED | {"array", "map"}

# Writer type -> reader types that may decode it (Avro spec, "Schema Resolution").
_PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def can_read(reader_schema: AvroSchema, writer_schema: AvroSchema) -> list[str]:
    """Why data written with ``writer_schema`` cannot be read with ``reader_schema``.

    Empty list: compatible. Each reason starts with a path into the reader schema
    (``/fields/price``, ``/items``, ...).
    """
    return _Resolver(reader_schema, writer_schema).run()


def check(
    level: str,
    new: AvroSchema,
    existing: Sequence[AvroSchema],
    labels: Sequence[str] | None = None,
) -> list[str]:
    """Why ``new`` may not follow ``existing`` (oldest first) under compatibility ``level``.

    Non-transitive levels compare with the newest existing schema only; ``_TRANSITIVE``
    levels with every one. BACKWARD: ``new`` reads data of the old schemas; FORWARD: the old
    schemas read data of ``new``; FULL: both. ``labels`` name the existing schemas in the
    reasons (e.g. ``"version 3"``). Raises ValueError for an unknown level.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}; expected one of {LEVELS}")
    if level == "NONE" or not existing:
        return []
    names = (
        list(labels) if labels is not None else [f"schema #{i + 1}" for i in range(len(existing))]
    )
    if len(names) != len(existing):
        raise ValueError("labels must name every existing schema")
    pairs = list(zip(existing, names, strict=True))
    if not level.endswith("_TRANSITIVE"):
        pairs = pairs[-1:]
    base = level.removesuffix("_TRANSITIVE")
    reasons: list[str] = []
    # Newest first: the most relevant conflict is reported first.
    for old, name in reversed(pairs):
        if base in ("BACKWARD", "FULL"):
            reasons += [f"new schema cannot read {name}: {r}" for r in can_read(new, old)]
        if base in ("FORWARD", "FULL"):
            reasons += [f"{name} cannot read the new schema: {r}" for r in can_read(old, new)]
    return reasons


def _parse(schema: AvroSchema) -> tuple[Any, dict[str, dict]]:
    """fastavro's parsed form (every name fully qualified) and its named-type table."""
    names: dict[str, dict] = {}
    # _write_hint=False keeps the result plain JSON: no fastavro bookkeeping keys.
    parsed = fastavro.parse_schema(schema, named_schemas=names, _write_hint=False)
    return parsed, names


def _namespace(fullname: str) -> str:
    return fullname.rpartition(".")[0]


def _short(fullname: str) -> str:
    return fullname.rpartition(".")[2]


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _describe(node: Any) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, dict):
        kind = node.get("type")
        return f"{kind} {node['name']}" if kind in NAMED else str(kind)
    return str(node)


class _Resolver:
    """One reader/writer comparison; remembers record pairs under comparison (recursion)."""

    def __init__(self, reader: AvroSchema, writer: AvroSchema) -> None:
        self.reader, self.reader_names = _parse(reader)
        self.writer, self.writer_names = _parse(writer)
        # A recursive record compared with itself again is assumed compatible while its
        # first comparison is still running; the first comparison reports any conflict.
        self._in_progress: set[tuple[str, str]] = set()

    def run(self) -> list[str]:
        """Reasons the reader cannot decode what the writer writes."""
        return self._match("", self.reader, self.writer)

    @staticmethod
    def _deref(node: Any, names: dict[str, dict]) -> Any:
        """The definition behind a named-type reference or a bare ``{"type": ...}`` wrapper."""
        while True:
            if isinstance(node, str) and node not in PRIMITIVES:
                node = names[node]
            elif isinstance(node, dict) and not (
                isinstance(node.get("type"), str) and node["type"] in _KINDS
            ):
                # {"type": {...}}, {"type": [...]} or {"type": "ns.Name"}: only a wrapper.
                node = node["type"]
            else:
                return node

    @staticmethod
    def _kind(node: Any) -> str:
        if isinstance(node, list):
            return "union"
        if isinstance(node, dict):
            return "record" if node["type"] == "error" else node["type"]
        return node

    def _match(self, path: str, reader: Any, writer: Any) -> list[str]:
        reader = self._deref(reader, self.reader_names)
        writer = self._deref(writer, self.writer_names)
        r_kind, w_kind = self._kind(reader), self._kind(writer)
        where = path or "/"

        if w_kind == "union":
            # Any writer branch may occur in the data, so every one must be readable.
            reasons: list[str] = []
            for branch in writer:
                reasons += self._match(path, reader, branch)
            return reasons
        if r_kind == "union":
            # The writer's value is decoded with the first reader branch that matches it.
            if any(not self._match(path, branch, writer) for branch in reader):
                return []
            return [
                f"{where}: reader union has no branch that can read writer type "
                f"{_describe(writer)!s}"
            ]
        if r_kind != w_kind:
            if r_kind in _PROMOTIONS.get(w_kind, ()):
                return []
            return [
                f"{where}: reader type {_describe(reader)} cannot read writer type "
                f"{_describe(writer)}"
            ]
        if r_kind in PRIMITIVES:
            return []
        if r_kind in ("record", "enum", "fixed") and not self._same_name(reader, writer):
            return [
                f"{where}: reader {r_kind} {reader['name']} does not match writer "
                f"{w_kind} {writer['name']} (names differ and no alias)"
            ]
        if r_kind == "array":
            return self._match(f"{path}/items", reader["items"], writer["items"])
        if r_kind == "map":
            return self._match(f"{path}/values", reader["values"], writer["values"])
        if r_kind == "fixed":
            if reader["size"] != writer["size"]:
                return [
                    f"{where}: fixed {reader['name']} has size {reader['size']} in the "
                    f"reader but {writer['size']} in the writer"
                ]
            return []
        if r_kind == "enum":
            return self._match_enum(where, reader, writer)
        return self._match_record(path, reader, writer)

    @staticmethod
    def _same_name(reader: dict, writer: dict) -> bool:
        # Avro compares unqualified names; a reader alias may name the writer's full name.
        if _short(reader["name"]) == _short(writer["name"]):
            return True
        namespace = _namespace(reader["name"])
        aliases = {_qualify(a, namespace) for a in reader.get("aliases", ())}
        return writer["name"] in aliases

    @staticmethod
    def _match_enum(where: str, reader: dict, writer: dict) -> list[str]:
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        # A reader enum default absorbs symbols it does not know.
        if not missing or reader.get("default") in reader["symbols"]:
            return []
        return [
            f"{where}: reader enum {reader['name']} lacks writer symbols {missing} "
            f"and has no default"
        ]

    def _match_record(self, path: str, reader: dict, writer: dict) -> list[str]:
        key = (reader["name"], writer["name"])
        if key in self._in_progress:
            return []
        self._in_progress.add(key)
        try:
            writer_fields = {f["name"]: f for f in writer["fields"]}
            reasons: list[str] = []
            for field in reader["fields"]:
                field_path = f"{path}/fields/{field['name']}"
                source = self._writer_field(field, writer_fields)
                if source is None:
                    # Fields only the writer has are skipped; fields only the reader has
                    # are filled from the reader's default, so one must exist.
                    if "default" not in field:
                        reasons.append(
                            f"{field_path}: reader field {field['name']!r} is missing "
                            f"from the writer and has no default"
                        )
                    continue
                reasons += self._match(field_path, field["type"], source["type"])
            return reasons
        finally:
            self._in_progress.discard(key)

    @staticmethod
    def _writer_field(field: dict, writer_fields: dict[str, dict]) -> dict | None:
        for name in (field["name"], *field.get("aliases", ())):
            if name in writer_fields:
                return writer_fields[name]
        return None
