"""Avro in the Confluent wire format: magic byte 0, 4-byte schema id, schemaless body.

Any standard consumer with a schema-registry client (confluent-kafka's AvroDeserializer,
kcat -s avro, Kafka Connect, ksqlDB) can read what this writes.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import fastavro
import httpx

from mmstream.errors import ConfigurationError, TransientError

_MAGIC = 0
_REGISTRY_JSON = "application/vnd.schemaregistry.v1+json"


class RegistryUnavailable(TransientError):
    """The schema registry did not answer. Check SCHEMA_REGISTRY_URL and the registry."""

    code = "schema_registry_unavailable"


def register(registry_url: str, subject: str, schema: dict, timeout_s: float = 10.0) -> int:
    """Register ``schema`` under ``subject`` (idempotent) and return its global id."""
    try:
        resp = httpx.post(
            f"{registry_url.rstrip('/')}/subjects/{subject}/versions",
            content=json.dumps({"schema": json.dumps(schema)}),
            headers={"Content-Type": _REGISTRY_JSON, "Accept": _REGISTRY_JSON},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise RegistryUnavailable(f"schema registry unreachable: {exc}") from exc
    if resp.status_code >= 500:
        raise RegistryUnavailable(f"schema registry answered {resp.status_code}: {resp.text[:200]}")
    if resp.status_code != 200:
        raise ConfigurationError(
            f"schema registry refused subject {subject!r} ({resp.status_code}): {resp.text[:300]}"
        )
    return int(resp.json()["id"])


class AvroEncoder:
    """Encodes dicts with one schema, registered once at construction."""

    def __init__(self, schema_path: Path, registry_url: str, subject: str) -> None:
        self.schema_json = json.loads(schema_path.read_text(encoding="utf-8"))
        self.parsed = fastavro.parse_schema(self.schema_json)
        self.schema_id = register(registry_url, subject, self.schema_json)
        self._prefix = struct.pack(">bI", _MAGIC, self.schema_id)

    def encode(self, record: dict) -> bytes:
        """Wire-format bytes of ``record``."""
        buf = io.BytesIO()
        buf.write(self._prefix)
        fastavro.schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()
