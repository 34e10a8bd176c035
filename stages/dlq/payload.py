"""DLQ payloads: what format they are in, how to show them, and RFC 6902 patches on JSON.

A record keeps its original bytes in the DLQ; only JSON ones can be patched. Avro (the
Confluent wire format: magic byte 0 + schema id) and anything that is not valid JSON are
refused, rather than guessed at.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer

from mmstream.envelope import CONTENT_TYPE, decode_headers
from stages.dlq.errors import PatchRefused

Headers = list[tuple[str, bytes]]


def detect(value: bytes | None, headers: Headers) -> str:
    """``empty`` (tombstone), ``json``, ``avro``, ``text`` or ``binary``."""
    if value is None or value == b"":
        return "empty"
    content_type = decode_headers(headers).get(CONTENT_TYPE, "").lower()
    if "avro" in content_type:
        return "avro"
    try:
        json.loads(value)
        return "json"
    except ValueError:
        pass
    if value[:1] == b"\x00" and len(value) >= 5:
        return "avro"
    try:
        value.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "binary"


def schema_id(value: bytes) -> int | None:
    """The Confluent schema id of an Avro payload, when it has the wire-format header."""
    return int.from_bytes(value[1:5], "big") if value[:1] == b"\x00" and len(value) >= 5 else None


def describe(value: bytes | None, headers: Headers) -> dict[str, Any]:
    """A JSON-ready view: parsed JSON, text, or base64 for what cannot be shown as text."""
    fmt = detect(value, headers)
    out: dict[str, Any] = {"format": fmt, "bytes": len(value or b"")}
    if value is None:  # a tombstone: "empty"
        return out
    if fmt == "json":
        out["json"] = json.loads(value)
    elif fmt == "text":
        out["text"] = value.decode("utf-8")
    elif fmt in ("avro", "binary"):
        out["base64"] = base64.b64encode(value).decode()
        if fmt == "avro":
            out["schema_id"] = schema_id(value)
    return out


def pretty(value: bytes | None, headers: Headers) -> str:
    """The payload for a human: indented JSON, the text, or a labelled hex dump."""
    view = describe(value, headers)
    fmt = view["format"]
    if fmt == "empty":
        return "(no value: tombstone)"
    if fmt == "json":
        return json.dumps(view["json"], indent=2, ensure_ascii=False)
    if fmt == "text":
        return view["text"]
    label = f"avro, schema id {view['schema_id']}" if fmt == "avro" else "binary"
    shown = (value or b"")[:256].hex(" ")  # avro or binary: never None here
    more = f" … ({view['bytes'] - 256} more bytes)" if view["bytes"] > 256 else ""
    return f"({label}, {view['bytes']} bytes) {shown}{more}"


def load_patch(path: Path) -> jsonpatch.JsonPatch:
    """Read and validate an RFC 6902 patch file (a JSON array of operations)."""
    try:
        ops = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PatchRefused(f"cannot read patch file {path}: {exc}") from exc
    if not isinstance(ops, list) or not ops:
        raise PatchRefused(
            f"patch file {path} must hold a non-empty JSON array of RFC 6902 operations"
        )
    try:
        return jsonpatch.JsonPatch(ops)
    except (
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
        TypeError,
        KeyError,
        AttributeError,
    ) as exc:
        raise PatchRefused(f"patch file {path} is not a valid RFC 6902 patch: {exc}") from exc


def apply_patch(
    patch: jsonpatch.JsonPatch, value: bytes | None, headers: Headers, *, where: str
) -> bytes:
    """The patched payload (compact UTF-8 JSON); PatchRefused names ``where`` and why."""
    fmt = detect(value, headers)
    if value is None or fmt != "json":
        reason = {
            "empty": "it has no value (a tombstone)",
            "avro": "its payload is Avro (binary), not JSON",
        }.get(fmt, "its payload is not valid JSON")
        raise PatchRefused(
            f"cannot patch {where}: {reason}; JSON patches apply to JSON payloads only"
        )
    try:
        patched = patch.apply(json.loads(value))
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchRefused(f"the patch does not apply to {where}: {exc}") from exc
    return json.dumps(patched, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
