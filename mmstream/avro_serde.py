"""Avro in the Confluent wire format (magic byte 0, 4-byte schema id, schemaless body), by
confluent-kafka's ``SchemaRegistryClient`` and ``AvroSerializer``.

The registry client brings what a production registry needs: basic or bearer auth, TLS
(CA, client certificate), retries and the id / schema caches. Any standard consumer with a
registry client (confluent-kafka's AvroDeserializer, kcat -s avro, Kafka Connect, ksqlDB)
reads what this writes.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from mmstream.errors import ConfigurationError, TransientError

#: What callers may pass as "the registry": its URL (no auth, system trust store), a
#: SchemaRegistryClient configuration (``Settings.registry_client_config()``) or a client.
RegistryArg = str | Mapping[str, object] | SchemaRegistryClient


class RegistryUnavailable(TransientError):
    """The schema registry did not answer. Check SCHEMA_REGISTRY_URL and the registry."""

    code = "schema_registry_unavailable"


_clients: dict[tuple, SchemaRegistryClient] = {}
_clients_lock = threading.Lock()


def registry_client(registry: RegistryArg) -> SchemaRegistryClient:
    """One SchemaRegistryClient per configuration and process, so its caches are shared by
    every encoder (each entity's norm topic) of a worker."""
    if isinstance(registry, SchemaRegistryClient):
        return registry
    conf = {"url": registry} if isinstance(registry, str) else dict(registry)
    if not conf.get("url"):
        raise ConfigurationError("no schema registry configured: set SCHEMA_REGISTRY_URL")
    key = tuple(sorted((k, repr(v)) for k, v in conf.items()))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = _clients[key] = SchemaRegistryClient(conf)
            except (ValueError, TypeError, OSError) as exc:  # bad URL, unreadable certificate
                raise ConfigurationError(
                    f"schema registry client refused its settings: {exc}"
                ) from exc
    return client


def registry_error(exc: Exception, what: str, secret: str | None = None) -> Exception:
    """The project error for a failed registry call: RegistryUnavailable when retrying may
    help (no answer, 5xx, 429), ConfigurationError when the registry refused (401, 403,
    409 incompatible, 422 invalid). ``secret`` (a password) is scrubbed from the text."""
    if isinstance(exc, SchemaRegistryError):
        status = exc.http_status_code
        text = f"{what}: schema registry answered {status}: {exc.error_message}"
        transient = status < 0 or status >= 500 or status == 429
    elif _untrusted(exc):  # retrying cannot help: the CA setting (or the registry's) is wrong
        text = (
            f"{what}: the schema registry's TLS certificate is not trusted ({exc}); set "
            "MM_REGISTRY__SSL_CA_FILE to the CA that signed it"
        )
        transient = False
    else:  # the client raises its HTTP library's errors (connect, TLS, timeout) as they are
        text = f"{what}: schema registry unreachable: {type(exc).__name__}: {exc}"
        transient = True
    if secret:
        text = text.replace(secret, "***")
    return (RegistryUnavailable if transient else ConfigurationError)(text[:500])


def _untrusted(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def register(registry: RegistryArg, subject: str, schema: dict, timeout_s: float = 10.0) -> int:
    """Register ``schema`` under ``subject`` (idempotent) and return its global id.

    ``timeout_s`` applies when ``registry`` is a bare URL; a configuration carries its own.
    """
    if isinstance(registry, str):
        registry = {"url": registry, "timeout": timeout_s}
    client = registry_client(registry)
    try:
        return client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
    except Exception as exc:  # noqa: BLE001 — mapped to the project's two kinds below
        raise registry_error(exc, f"registering subject {subject!r}") from exc


class AvroEncoder:
    """Encodes dicts with one schema under one subject, registered once at construction
    (a registry that refuses it stops the worker at start, not at the first record)."""

    def __init__(self, schema_path: Path, registry: RegistryArg, subject: str) -> None:
        self.schema_json = json.loads(schema_path.read_text(encoding="utf-8"))
        # fastavro's parsed form, for callers that validate records before encoding.
        self.parsed = fastavro.parse_schema(self.schema_json)
        self.subject = subject
        client = registry_client(registry)
        # The same text the hand-written encoder registered, so an existing registry keeps
        # answering with the same ids (a registry may compare schema texts, not canonical forms).
        schema = Schema(json.dumps(self.schema_json), "AVRO")
        try:
            self.schema_id = client.register_schema(subject, schema)
        except Exception as exc:  # noqa: BLE001 — mapped to the project's two kinds
            raise registry_error(exc, f"registering subject {subject!r}") from exc
        # The registration above is cached by the client: the serializer's own (first call)
        # is answered from that cache. The subject is fixed: ours is not always <topic>-value
        # of the context's topic (tests and tools encode for another topic's subject).
        self._serializer = AvroSerializer(
            client,
            schema,
            conf={
                "auto.register.schemas": True,
                "subject.name.strategy": lambda _ctx, _name: subject,
            },
        )
        self._ctx = SerializationContext(subject.removesuffix("-value"), MessageField.VALUE)

    def encode(self, record: dict) -> bytes:
        """Wire-format bytes of ``record``."""
        try:
            return self._serializer(record, self._ctx)
        except SchemaRegistryError as exc:
            raise registry_error(exc, f"encoding for subject {self.subject!r}") from exc

    def encode_many(self, records: Iterable[dict]) -> list[bytes]:
        """Wire-format bytes of each record, in order."""
        serialize, ctx = self._serializer, self._ctx
        try:
            return [serialize(record, ctx) for record in records]
        except SchemaRegistryError as exc:
            raise registry_error(exc, f"encoding for subject {self.subject!r}") from exc
