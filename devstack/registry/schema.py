"""Validation of what clients submit: AVRO schemas (with their identity fingerprint),
schema request bodies, version path segments and compatibility levels."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import fastavro

from devstack.registry.errors import RegistryError, invalid_schema
from mmstream import avro_compat as compat

MAX_VERSION = 2**31 - 1
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ParsedSchema:
    """A validated AVRO schema: its JSON value, stored text and identity fingerprint."""

    value: Any
    text: str
    fingerprint: str


def parse_avro(schema_text: Any) -> ParsedSchema:
    """Validate an AVRO schema string; RegistryError 42201 when it is not one.

    The fingerprint is SHA-256 of the fastavro-parsed schema (names fully qualified) as
    key-sorted compact JSON. Not of the Parsing Canonical Form: PCF drops defaults,
    logicalType, aliases and docs, so a schema adding a default or a timestamp-millis
    logical type would silently get the old id and the old text.
    """
    if not isinstance(schema_text, str) or not schema_text.strip():
        raise invalid_schema("'schema' must be a non-empty string holding the schema JSON")
    try:
        value = json.loads(schema_text)
    except ValueError as exc:
        raise invalid_schema(f"not JSON: {exc}") from None
    try:
        parsed = fastavro.parse_schema(value, _write_hint=False)
    except Exception as exc:  # fastavro raises KeyError/TypeError too on malformed input
        raise invalid_schema(f"{type(exc).__name__}: {exc}") from None
    problems = _structure_problems(value)
    if problems:
        raise invalid_schema("; ".join(problems))
    normal = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ParsedSchema(
        value=value,
        text=json.dumps(value, separators=(",", ":"), ensure_ascii=False),
        fingerprint=hashlib.sha256(normal.encode("utf-8")).hexdigest(),
    )


def schema_from_body(body: dict) -> ParsedSchema:
    """Validate a {schema, schemaType?, references?} request body."""
    schema_type = body.get("schemaType") or "AVRO"
    if str(schema_type).upper() != "AVRO":
        raise invalid_schema(
            f"schemaType {schema_type!r} is not supported; this registry serves AVRO schemas only"
        )
    if body.get("references"):
        raise invalid_schema(
            "schema references are not supported by this registry; inline the referenced types"
        )
    if body.get("metadata") or body.get("ruleSet"):
        raise invalid_schema("schema metadata and rule sets are not supported by this registry")
    return parse_avro(body.get("schema"))


def parse_version(version: str) -> int | None:
    """A version path segment as an int, or None for ``latest`` (or -1); else 42202."""
    if version in ("latest", "-1"):
        return None
    if version.isdigit() and 1 <= int(version) <= MAX_VERSION:
        return int(version)
    raise RegistryError(
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def level_from_body(body: dict) -> str:
    """The level of a config body (``compatibility`` or ``compatibilityLevel``); else 42203."""
    value = body.get("compatibility", body.get("compatibilityLevel"))
    if isinstance(value, str) and value.upper() in compat.LEVELS:
        return value.upper()
    raise RegistryError(
        42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )


def _structure_problems(node: Any, path: str = "", namespace: str = "") -> list[str]:
    """Avro rules fastavro does not enforce but Avro Java (hence other clients) does.

    Walks the schema as submitted: fastavro's parsed form already papers over some
    problems (a record without "fields" comes back with an empty list).
    """
    where = path or "/"
    if isinstance(node, list):
        problems: list[str] = []
        seen: set[str] = set()
        for i, branch in enumerate(node):
            if isinstance(branch, list):
                problems.append(f"{where}: a union may not directly contain another union")
                continue
            key = _union_key(branch, namespace)
            if key in seen:
                problems.append(f"{where}: union contains {key!r} twice")
            seen.add(key)
            problems += _structure_problems(branch, f"{path}/{i}", namespace)
        return problems
    if not isinstance(node, dict):
        return []
    kind = node.get("type")
    if not isinstance(kind, str):
        return _structure_problems(kind, path, namespace)
    problems = []
    if kind in compat.NAMED:
        fullname = _fullname(node, namespace)
        namespace = fullname.rpartition(".")[0]
        if not all(_AVRO_NAME.fullmatch(part) for part in fullname.split(".")):
            problems.append(f"{where}: invalid name {fullname!r}")
    if kind in ("record", "error"):
        fields = node.get("fields")
        if not isinstance(fields, list):
            return problems + [f"{where}: record {node.get('name')} needs a 'fields' list"]
        names = [f.get("name") for f in fields]
        for name in names:
            if not isinstance(name, str) or not _AVRO_NAME.fullmatch(name):
                problems.append(f"{where}: invalid field name {name!r}")
        dupes = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
        if dupes:
            problems.append(f"{where}: duplicate field names {dupes}")
        for field in fields:
            problems += _structure_problems(
                field.get("type"), f"{path}/fields/{field.get('name')}", namespace
            )
    elif kind == "enum":
        bad = [s for s in node.get("symbols", []) if not _AVRO_NAME.fullmatch(str(s))]
        if bad:
            problems.append(f"{where}: invalid enum symbols {bad}")
    elif kind == "fixed":
        size = node.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(f"{where}: fixed size must be a non-negative integer")
    elif kind == "array":
        problems += _structure_problems(node.get("items"), f"{path}/items", namespace)
    elif kind == "map":
        problems += _structure_problems(node.get("values"), f"{path}/values", namespace)
    return problems


def _fullname(node: dict, namespace: str) -> str:
    name = str(node.get("name", ""))
    if "." in name:
        return name
    namespace = node.get("namespace", namespace) or ""
    return f"{namespace}.{name}" if namespace else name


def _union_key(branch: Any, namespace: str) -> str:
    # Avro: at most one branch per unnamed type; named types count by full name.
    if isinstance(branch, dict):
        kind = branch.get("type")
        if kind in compat.NAMED:
            return _fullname(branch, namespace)
        return kind if isinstance(kind, str) else _union_key(kind, namespace)
    if isinstance(branch, str) and branch not in compat.PRIMITIVES:
        return _fullname({"name": branch}, namespace)
    return str(branch)
