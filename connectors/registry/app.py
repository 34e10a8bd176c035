"""The subset of the Confluent Schema Registry REST API that standard clients use, on PostgreSQL.

Production runs Karapace / Confluent Schema Registry; the embedded dev stack serves this
instead, so producers and consumers (confluent-kafka's AvroSerializer/AvroDeserializer,
``mmstream.avro_serde``) work unchanged. Paths, JSON shapes, error codes and the
``application/vnd.schemaregistry.v1+json`` content type follow Confluent. Only AVRO is
supported, without schema references.

Storage (migration 0001): ``registry_schema`` holds each distinct schema once under its
global id, ``registry_subject_version`` maps (subject, version) to an id with a soft-delete
flag, ``registry_config`` holds compatibility levels (the global level under subject '').
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import fastavro
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.errors import ConnectorError
from connectors.registry import compat

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
# Request bodies Confluent accepts; a request without a Content-Type is read as JSON too.
BODY_MEDIA_TYPES = frozenset({
    MEDIA_TYPE,
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
})
# registry_config row of the global level: '' can never be a subject in a URL path.
GLOBAL_SUBJECT = ""
MAX_VERSION = 2**31 - 1
# Namespaces our advisory locks away from any other advisory lock on the same database.
_LOCK_CLASS = 0x52454731
_REGISTER_ATTEMPTS = 5
# Unique violation, serialization failure, deadlock: a concurrent writer won; try again.
_RETRY_SQLSTATES = frozenset({"23505", "40001", "40P01"})
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ----------------------------------------------------------------------------- errors


class RegistryError(ConnectorError):
    """An error answered in Confluent's shape: ``{"error_code": ..., "message": ...}``.

    Confluent's error codes embed the HTTP status (40401 -> 404, 42201 -> 422, 409 -> 409),
    so the error carries only the code and the edge derives the status.
    """

    code = "schema_registry_error"

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status Confluent answers with this error code."""
        return self.error_code // 100 if self.error_code >= 1000 else self.error_code


def _subject_not_found(subject: str) -> RegistryError:
    return RegistryError(40401, f"Subject '{subject}' not found.")


def _version_not_found(version: int | None) -> RegistryError:
    return RegistryError(40402, f"Version {'latest' if version is None else version} not found.")


def _schema_id_not_found(schema_id: int) -> RegistryError:
    return RegistryError(40403, f"Schema {schema_id} not found")


def _invalid_schema(detail: str) -> RegistryError:
    return RegistryError(42201, f"Invalid schema: {detail}")


# ----------------------------------------------------------------------------- schemas


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
        raise _invalid_schema("'schema' must be a non-empty string holding the schema JSON")
    try:
        value = json.loads(schema_text)
    except ValueError as exc:
        raise _invalid_schema(f"not JSON: {exc}") from None
    try:
        parsed = fastavro.parse_schema(value, _write_hint=False)
    except Exception as exc:  # fastavro raises KeyError/TypeError too on malformed input
        raise _invalid_schema(f"{type(exc).__name__}: {exc}") from None
    problems = _structure_problems(value)
    if problems:
        raise _invalid_schema("; ".join(problems))
    normal = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ParsedSchema(
        value=value,
        text=json.dumps(value, separators=(",", ":"), ensure_ascii=False),
        fingerprint=hashlib.sha256(normal.encode("utf-8")).hexdigest(),
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
            problems += _structure_problems(field.get("type"),
                                            f"{path}/fields/{field.get('name')}", namespace)
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


def _valid_level(value: Any) -> str:
    if isinstance(value, str) and value.upper() in compat.LEVELS:
        return value.upper()
    raise RegistryError(
        42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )


# ----------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class SubjectVersion:
    """One row of registry_subject_version joined with its schema."""

    subject: str
    version: int
    schema_id: int
    deleted: bool
    schema_type: str
    text: str

    def as_json(self) -> dict:
        """Confluent's subject-version body (schemaType only when not AVRO, as Confluent)."""
        body = {"subject": self.subject, "version": self.version, "id": self.schema_id,
                "schema": self.text}
        if self.schema_type != "AVRO":
            body["schemaType"] = self.schema_type
        return body


_VERSION_ROWS = """
    SELECT v.subject, v.version, v.schema_id, v.deleted, s.schema_type, s.canonical
    FROM registry_subject_version v JOIN registry_schema s ON s.id = v.schema_id
"""


def _rows(conn: Connection, where: str, **params: Any) -> list[SubjectVersion]:
    result = conn.execute(text(f"{_VERSION_ROWS} WHERE {where} ORDER BY v.subject, v.version"),
                          params)
    return [SubjectVersion(*row) for row in result]


def _lock_subject(conn: Connection, subject: str) -> None:
    # Serializes every write to one subject: two registrations must not both pass the
    # compatibility check against the same latest version, nor pick the same number.
    conn.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:subject))"),
                 {"cls": _LOCK_CLASS, "subject": subject})


def _visible(rows: list[SubjectVersion], deleted: bool) -> list[SubjectVersion]:
    return rows if deleted else [r for r in rows if not r.deleted]


def _pick(rows: list[SubjectVersion], subject: str, version: int | None) -> SubjectVersion:
    """The row of ``version`` (None: latest) among ``rows``, with Confluent's 404s."""
    if not rows:
        raise _subject_not_found(subject)
    if version is None:
        return rows[-1]
    for row in rows:
        if row.version == version:
            return row
    raise _version_not_found(version)


def _page(items: list, offset: int, limit: int) -> list:
    items = items[max(offset, 0):]
    return items[:limit] if limit >= 0 else items


class RegistryStore:
    """The registry's operations on PostgreSQL; raises RegistryError for API errors."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads

    def subjects(self, deleted: bool, deleted_only: bool, prefix: str) -> list[str]:
        """Subject names: live ones, plus soft-deleted ones on request."""
        with self.engine.connect() as conn:
            result = conn.execute(text(
                "SELECT subject, bool_and(deleted) FROM registry_subject_version "
                "WHERE starts_with(subject, :prefix) GROUP BY subject ORDER BY subject"),
                {"prefix": prefix})
            rows = result.all()
        if deleted_only:
            return [s for s, all_deleted in rows if all_deleted]
        return [s for s, all_deleted in rows if deleted or not all_deleted]

    def versions(self, subject: str, deleted: bool = False) -> list[SubjectVersion]:
        """The subject's versions, oldest first (soft-deleted ones only when asked)."""
        with self.engine.connect() as conn:
            return _visible(_rows(conn, "v.subject = :subject", subject=subject), deleted)

    def version(self, subject: str, version: int | None, deleted: bool = False) -> SubjectVersion:
        """One version (None: latest); 40401 / 40402 when absent."""
        return _pick(self.versions(subject, deleted), subject, version)

    def schema(self, schema_id: int) -> tuple[str, str]:
        """(schema type, schema text) of a global id; 40403 when unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT schema_type, canonical FROM registry_schema "
                                    "WHERE id = :id"), {"id": schema_id}).first()
        if row is None:
            raise _schema_id_not_found(schema_id)
        return row[0], row[1]

    def usages(self, schema_id: int, deleted: bool) -> list[SubjectVersion]:
        """Every (subject, version) that uses a global id; 40403 when the id is unknown."""
        self.schema(schema_id)
        with self.engine.connect() as conn:
            return _visible(_rows(conn, "v.schema_id = :id", id=schema_id), deleted)

    def lookup(self, subject: str, schema: ParsedSchema, deleted: bool) -> SubjectVersion:
        """The version of ``subject`` holding ``schema``; 40401 / 40403 when none."""
        rows = self.versions(subject, deleted)
        if not rows:
            raise _subject_not_found(subject)
        with self.engine.connect() as conn:
            schema_id = conn.execute(text("SELECT id FROM registry_schema WHERE fingerprint = :f"),
                                     {"f": schema.fingerprint}).scalar()
        for row in rows:
            if row.schema_id == schema_id:
                return row
        raise RegistryError(40403, "Schema not found")

    def level(self, subject: str | None, fallback: bool = True) -> str | None:
        """Configured level of ``subject`` (None: global), falling back to global/default."""
        with self.engine.connect() as conn:
            return self._level(conn, subject, fallback)

    @staticmethod
    def _level(conn: Connection, subject: str | None, fallback: bool = True) -> str | None:
        wanted = [GLOBAL_SUBJECT] if subject is None else [subject, GLOBAL_SUBJECT]
        found = dict(conn.execute(
            text("SELECT subject, compatibility FROM registry_config WHERE subject = ANY(:s)"),
            {"s": wanted}).all())
        if subject is not None and subject in found:
            return found[subject]
        if subject is not None and not fallback:
            return None
        return found.get(GLOBAL_SUBJECT, compat.DEFAULT_LEVEL)

    def compatibility_with(self, subject: str, version: int | None,
                           schema: ParsedSchema) -> list[str]:
        """Why ``schema`` may not follow one version (None: latest) under the subject's level."""
        with self.engine.connect() as conn:
            level = self._level(conn, subject)
            rows = _visible(_rows(conn, "v.subject = :subject", subject=subject), False)
        row = _pick(rows, subject, version)
        # Against one chosen version, a transitive level means the same as its base level.
        return _check(level.removesuffix("_TRANSITIVE"), schema, [row])

    def compatibility_all(self, subject: str, schema: ParsedSchema) -> list[str]:
        """Why ``schema`` may not be registered now (every version the level requires)."""
        with self.engine.connect() as conn:
            level = self._level(conn, subject)
            rows = _visible(_rows(conn, "v.subject = :subject", subject=subject), False)
        return _check(level, schema, rows)

    # -- writes

    def register(self, subject: str, schema: ParsedSchema) -> int:
        """Register ``schema`` under ``subject``; its global id. Idempotent; 409 if the
        subject's compatibility level forbids it."""
        for attempt in range(1, _REGISTER_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    return self._register(conn, subject, schema)
            except (DBAPIError, _VersionTaken) as exc:
                sqlstate = ("23505" if isinstance(exc, _VersionTaken)
                            else getattr(exc.orig, "sqlstate", None))
                if sqlstate not in _RETRY_SQLSTATES or attempt == _REGISTER_ATTEMPTS:
                    raise
                log.info("registry: concurrent registration, retrying",
                         extra={"subject": subject, "sqlstate": sqlstate, "attempt": attempt})
        raise AssertionError("unreachable")

    def _register(self, conn: Connection, subject: str, schema: ParsedSchema) -> int:
        _lock_subject(conn, subject)
        schema_id = conn.execute(text("SELECT id FROM registry_schema WHERE fingerprint = :f"),
                                 {"f": schema.fingerprint}).scalar()
        rows = _rows(conn, "v.subject = :subject", subject=subject)
        live = [r for r in rows if not r.deleted]
        if schema_id is not None and any(r.schema_id == schema_id for r in live):
            return schema_id  # already a live version: Confluent answers its id, no check
        reasons = _check(self._level(conn, subject), schema, live)
        if reasons:
            raise RegistryError(
                409,
                f'Schema being registered is incompatible with an earlier schema for subject '
                f'"{subject}", details: {json.dumps(reasons, ensure_ascii=False)}',
            )
        if schema_id is None:
            # ON CONFLICT: another subject may be registering the same schema right now;
            # its committed row is then read back by the SELECT below.
            schema_id = conn.execute(text(
                "INSERT INTO registry_schema (schema_type, canonical, fingerprint) "
                "VALUES ('AVRO', :canonical, :f) ON CONFLICT (fingerprint) DO NOTHING "
                "RETURNING id"), {"canonical": schema.text, "f": schema.fingerprint}).scalar()
            if schema_id is None:
                schema_id = conn.execute(text(
                    "SELECT id FROM registry_schema WHERE fingerprint = :f"),
                    {"f": schema.fingerprint}).scalar_one()
        # Numbers continue after soft-deleted versions, as in Confluent.
        next_version = max((r.version for r in rows), default=0) + 1
        # Confluent tombstones a soft-deleted version of the same schema when it is
        # registered again; here that also frees UNIQUE (subject, schema_id).
        conn.execute(text("DELETE FROM registry_subject_version "
                          "WHERE subject = :subject AND schema_id = :id AND deleted"),
                     {"subject": subject, "id": schema_id})
        inserted = conn.execute(text(
            "INSERT INTO registry_subject_version (subject, version, schema_id) "
            "VALUES (:subject, :version, :id) ON CONFLICT DO NOTHING RETURNING version"),
            {"subject": subject, "version": next_version, "id": schema_id}).scalar()
        if inserted is None:
            # Only possible if the subject lock was bypassed; the caller retries.
            raise _VersionTaken(f"{subject} version {next_version}")
        log.info("registry: registered schema", extra={"subject": subject,
                                                        "version": next_version, "id": schema_id})
        return schema_id

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        """Soft-delete every live version (or hard-delete soft-deleted ones); the versions."""
        with self.engine.begin() as conn:
            _lock_subject(conn, subject)
            rows = _rows(conn, "v.subject = :subject", subject=subject)
            if not rows:
                raise _subject_not_found(subject)
            live = [r.version for r in rows if not r.deleted]
            if permanent:
                if live:
                    raise RegistryError(40405, f"Subject '{subject}' was not deleted first "
                                               "before being permanently deleted")
                conn.execute(text("DELETE FROM registry_subject_version WHERE subject = :s"),
                             {"s": subject})
                return [r.version for r in rows]
            if not live:
                raise RegistryError(40404, f"Subject '{subject}' was soft deleted.Set "
                                           "permanent=true to delete permanently")
            conn.execute(text("UPDATE registry_subject_version SET deleted = true "
                              "WHERE subject = :s"), {"s": subject})
            # Confluent drops the subject's compatibility config with the subject.
            conn.execute(text("DELETE FROM registry_config WHERE subject = :s"), {"s": subject})
            return live

    def delete_version(self, subject: str, version: int | None, permanent: bool) -> int:
        """Soft-delete one version (hard-delete a soft-deleted one); the version number."""
        with self.engine.begin() as conn:
            _lock_subject(conn, subject)
            rows = _rows(conn, "v.subject = :subject", subject=subject)
            if not rows:
                raise _subject_not_found(subject)
            # "latest" of a soft delete is the latest live version; a number (or a
            # permanent delete) may name a soft-deleted one.
            row = _pick(_visible(rows, deleted=version is not None or permanent), subject,
                        version)
            if permanent:
                if not row.deleted:
                    raise RegistryError(40407, f"Subject '{subject}' Version {row.version} was "
                                               "not deleted first before being permanently deleted")
                conn.execute(text("DELETE FROM registry_subject_version "
                                  "WHERE subject = :s AND version = :v"),
                             {"s": subject, "v": row.version})
            else:
                if row.deleted:
                    raise RegistryError(40406, f"Subject '{subject}' Version {row.version} was "
                                               "soft deleted.Set permanent=true to delete "
                                               "permanently")
                conn.execute(text("UPDATE registry_subject_version SET deleted = true "
                                  "WHERE subject = :s AND version = :v"),
                             {"s": subject, "v": row.version})
            return row.version

    def set_level(self, subject: str | None, level: str) -> None:
        """Set the level of ``subject`` (None: the global level)."""
        with self.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO registry_config (subject, compatibility) VALUES (:s, :c) "
                "ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility"),
                {"s": GLOBAL_SUBJECT if subject is None else subject, "c": level})

    def delete_level(self, subject: str | None) -> str:
        """Remove a subject's level (None: reset the global one); the level it had."""
        with self.engine.begin() as conn:
            old = self._level(conn, subject, fallback=subject is None)
            if old is None:
                raise RegistryError(40408, f"Subject '{subject}' does not have subject-level "
                                           "compatibility configured")
            conn.execute(text("DELETE FROM registry_config WHERE subject = :s"),
                         {"s": GLOBAL_SUBJECT if subject is None else subject})
            return old

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


class _VersionTaken(Exception):
    """A version number taken concurrently; register() retries like a unique violation."""


def _check(level: str, schema: ParsedSchema, rows: list[SubjectVersion]) -> list[str]:
    return compat.check(level, schema.value, [json.loads(r.text) for r in rows],
                        labels=[f"version {r.version}" for r in rows])


# ----------------------------------------------------------------------------- HTTP


class RegistryJSONResponse(JSONResponse):
    """JSON with Confluent's content type."""

    media_type = MEDIA_TYPE


async def _json_body(request: Request) -> dict:
    """The request body as a JSON object, accepting Confluent's request content types."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in BODY_MEDIA_TYPES:
        raise RegistryError(415, "HTTP 415 Unsupported Media Type")
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise RegistryError(400, f"Unexpected character in request body: {exc}") from None
    if not isinstance(body, dict):
        raise RegistryError(422, "Request body must be a JSON object")
    return body


def _schema_from_body(body: dict) -> ParsedSchema:
    """Validate a {schema, schemaType?, references?} request body."""
    schema_type = body.get("schemaType") or "AVRO"
    if str(schema_type).upper() != "AVRO":
        raise _invalid_schema(f"schemaType {schema_type!r} is not supported; this registry "
                              "serves AVRO schemas only")
    if body.get("references"):
        raise _invalid_schema("schema references are not supported by this registry; "
                              "inline the referenced types")
    if body.get("metadata") or body.get("ruleSet"):
        raise _invalid_schema("schema metadata and rule sets are not supported by this registry")
    return parse_avro(body.get("schema"))


def create_app(database_url: str) -> FastAPI:
    """The registry API on the PostgreSQL database at ``database_url`` (SQLAlchemy URL)."""
    engine = create_engine(database_url, pool_pre_ping=True)
    store = RegistryStore(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="MasterMobile Stream schema registry",
        version="1.0.0",
        description="Confluent Schema Registry API subset (AVRO) for the embedded dev stack.",
        default_response_class=RegistryJSONResponse,
        lifespan=lifespan,
    )
    app.state.store = store
    _install_error_handlers(app)

    @app.get("/")
    def root() -> dict:
        return {}

    @app.get("/health")
    def health() -> Response:
        try:
            store.ping()
        except SQLAlchemyError:
            return RegistryJSONResponse({"status": "unavailable"}, status_code=503)
        return RegistryJSONResponse({"status": "ok"})

    @app.get("/schemas/types")
    def schema_types() -> list[str]:
        return ["AVRO"]

    @app.get("/schemas/ids/{schema_id}")
    def schema_by_id(schema_id: int) -> dict:
        schema_type, schema_text = store.schema(schema_id)
        body = {"schema": schema_text}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        return body

    @app.get("/schemas/ids/{schema_id}/schema")
    def raw_schema_by_id(schema_id: int) -> Response:
        return Response(store.schema(schema_id)[1], media_type=MEDIA_TYPE)

    @app.get("/schemas/ids/{schema_id}/versions")
    def schema_versions(schema_id: int, deleted: bool = False) -> list[dict]:
        return [{"subject": r.subject, "version": r.version}
                for r in store.usages(schema_id, deleted)]

    @app.get("/schemas/ids/{schema_id}/subjects")
    def schema_subjects(schema_id: int, deleted: bool = False) -> list[str]:
        return sorted({r.subject for r in store.usages(schema_id, deleted)})

    @app.get("/subjects")
    def subjects(deleted: bool = False, deleted_only: bool = False, subjectPrefix: str = "",
                 offset: int = 0, limit: int = -1) -> list[str]:
        return _page(store.subjects(deleted, deleted_only, subjectPrefix), offset, limit)

    @app.get("/subjects/{subject}/versions")
    def versions(subject: str, deleted: bool = False, deleted_only: bool = False,
                 offset: int = 0, limit: int = -1) -> list[int]:
        rows = store.versions(subject, deleted=deleted or deleted_only)
        if deleted_only:
            rows = [r for r in rows if r.deleted]
        if not rows:
            raise _subject_not_found(subject)
        return _page([r.version for r in rows], offset, limit)

    @app.get("/subjects/{subject}/versions/{version}")
    def get_version(subject: str, version: str, deleted: bool = False) -> dict:
        return store.version(subject, parse_version(version), deleted).as_json()

    @app.get("/subjects/{subject}/versions/{version}/schema")
    def get_version_schema(subject: str, version: str, deleted: bool = False) -> Response:
        row = store.version(subject, parse_version(version), deleted)
        return Response(row.text, media_type=MEDIA_TYPE)

    @app.post("/subjects/{subject}/versions")
    def register(subject: str, body: dict = Depends(_json_body)) -> dict:
        return {"id": store.register(subject, _schema_from_body(body))}

    @app.post("/subjects/{subject}")
    def lookup(subject: str, deleted: bool = False, body: dict = Depends(_json_body)) -> dict:
        return store.lookup(subject, _schema_from_body(body), deleted).as_json()

    @app.delete("/subjects/{subject}")
    def delete_subject(subject: str, permanent: bool = False) -> list[int]:
        return store.delete_subject(subject, permanent)

    @app.delete("/subjects/{subject}/versions/{version}")
    def delete_version(subject: str, version: str, permanent: bool = False) -> int:
        return store.delete_version(subject, parse_version(version), permanent)

    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    def compatible_with_version(subject: str, version: str, verbose: bool = False,
                                body: dict = Depends(_json_body)) -> dict:
        reasons = store.compatibility_with(subject, parse_version(version),
                                           _schema_from_body(body))
        return _compat_answer(reasons, verbose)

    @app.post("/compatibility/subjects/{subject}/versions")
    def compatible_with_all(subject: str, verbose: bool = False,
                            body: dict = Depends(_json_body)) -> dict:
        reasons = store.compatibility_all(subject, _schema_from_body(body))
        return _compat_answer(reasons, verbose)

    @app.get("/config")
    def get_global_config() -> dict:
        return {"compatibilityLevel": store.level(None)}

    @app.put("/config")
    def put_global_config(body: dict = Depends(_json_body)) -> dict:
        level = _valid_level(body.get("compatibility", body.get("compatibilityLevel")))
        store.set_level(None, level)
        return {"compatibility": level}

    @app.delete("/config")
    def delete_global_config() -> dict:
        return {"compatibilityLevel": store.delete_level(None)}

    @app.get("/config/{subject}")
    def get_subject_config(subject: str, defaultToGlobal: bool = False) -> dict:
        level = store.level(subject, fallback=defaultToGlobal)
        if level is None:
            # Confluent and Karapace: no subject-level config is a 404 unless asked to fall back.
            raise RegistryError(40408, f"Subject '{subject}' does not have subject-level "
                                       "compatibility configured")
        return {"compatibilityLevel": level}

    @app.put("/config/{subject}")
    def put_subject_config(subject: str, body: dict = Depends(_json_body)) -> dict:
        level = _valid_level(body.get("compatibility", body.get("compatibilityLevel")))
        store.set_level(subject, level)
        return {"compatibility": level}

    @app.delete("/config/{subject}")
    def delete_subject_config(subject: str) -> dict:
        return {"compatibilityLevel": store.delete_level(subject)}

    return app


def _compat_answer(reasons: list[str], verbose: bool) -> dict:
    answer: dict[str, Any] = {"is_compatible": not reasons}
    if verbose:
        answer["messages"] = reasons
    return answer


def _error(error_code: int, message: str, status: int) -> RegistryJSONResponse:
    return RegistryJSONResponse({"error_code": error_code, "message": message},
                                status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error in Confluent's body shape, so clients raise their usual errors."""

    @app.exception_handler(RegistryError)
    async def _registry_error(request: Request, exc: RegistryError) -> Response:
        return _error(exc.error_code, exc.message, exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        phrase = HTTPStatus(exc.status_code).phrase
        return _error(exc.status_code, f"HTTP {exc.status_code} {phrase}", exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        return _error(422, f"Invalid request: {problems}", 422)

    @app.exception_handler(SQLAlchemyError)
    async def _store_error(request: Request, exc: SQLAlchemyError) -> Response:
        log.error("registry: database error", exc_info=exc)
        return _error(50001, "Error in the backend data store", 500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Starlette logs and re-raises after this answer; clients still get Confluent's shape.
        return _error(500, "Internal Server Error", 500)
