"""The subset of the Confluent Schema Registry REST API that standard clients use, on PostgreSQL.

Production runs Karapace / Confluent Schema Registry; the embedded dev stack serves this
instead, so producers and consumers (confluent-kafka's AvroSerializer/AvroDeserializer,
``mmstream.avro_serde``) work unchanged. Paths, JSON shapes, error codes and the
``application/vnd.schemaregistry.v1+json`` content type follow Confluent. Only AVRO is
supported, without schema references.

This module is the HTTP edge (routes, request bodies, error answers). Errors live in
``errors``, schema validation in ``schema``, storage in ``store`` and ``rows``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from devstack.registry.errors import RegistryError, no_subject_level, subject_not_found
from devstack.registry.rows import SubjectVersion
from devstack.registry.schema import (
    MAX_VERSION,
    ParsedSchema,
    level_from_body,
    parse_avro,
    parse_version,
    schema_from_body,
)
from devstack.registry.store import GLOBAL_SUBJECT, RegistryStore

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
# Request bodies Confluent accepts; a request without a Content-Type is read as JSON too.
BODY_MEDIA_TYPES = frozenset(
    {
        MEDIA_TYPE,
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
    }
)

# The names this module held before it was split, still importable from here.
__all__ = [
    "BODY_MEDIA_TYPES",
    "GLOBAL_SUBJECT",
    "MAX_VERSION",
    "MEDIA_TYPE",
    "ParsedSchema",
    "RegistryError",
    "RegistryJSONResponse",
    "RegistryStore",
    "SubjectVersion",
    "create_app",
    "parse_avro",
    "parse_version",
]


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


def _page(items: list, offset: int, limit: int) -> list:
    """Confluent's ``offset``/``limit`` paging of a list answer (limit -1: no limit)."""
    items = items[max(offset, 0) :]
    return items[:limit] if limit >= 0 else items


def create_app(database_url: str, basic_auth: tuple[str, str] | None = None) -> FastAPI:
    """The registry API on the PostgreSQL database at ``database_url`` (SQLAlchemy URL).

    ``basic_auth`` (user, password): every call but /health must carry them, as a secured
    Confluent registry asks (tests and `mmctl run` exercise the clients' registry auth)."""
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
    if basic_auth is not None:
        _install_basic_auth(app, *basic_auth)

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
        return [
            {"subject": r.subject, "version": r.version} for r in store.usages(schema_id, deleted)
        ]

    @app.get("/schemas/ids/{schema_id}/subjects")
    def schema_subjects(schema_id: int, deleted: bool = False) -> list[str]:
        return sorted({r.subject for r in store.usages(schema_id, deleted)})

    @app.get("/subjects")
    def subjects(
        deleted: bool = False,
        deleted_only: bool = False,
        subjectPrefix: str = "",
        offset: int = 0,
        limit: int = -1,
    ) -> list[str]:
        return _page(store.subjects(deleted, deleted_only, subjectPrefix), offset, limit)

    @app.get("/subjects/{subject}/versions")
    def versions(
        subject: str,
        deleted: bool = False,
        deleted_only: bool = False,
        offset: int = 0,
        limit: int = -1,
    ) -> list[int]:
        rows = store.versions(subject, deleted=deleted or deleted_only)
        if deleted_only:
            rows = [r for r in rows if r.deleted]
        if not rows:
            raise subject_not_found(subject)
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
        return {"id": store.register(subject, schema_from_body(body))}

    @app.post("/subjects/{subject}")
    def lookup(subject: str, deleted: bool = False, body: dict = Depends(_json_body)) -> dict:
        return store.lookup(subject, schema_from_body(body), deleted).as_json()

    @app.delete("/subjects/{subject}")
    def delete_subject(subject: str, permanent: bool = False) -> list[int]:
        return store.delete_subject(subject, permanent)

    @app.delete("/subjects/{subject}/versions/{version}")
    def delete_version(subject: str, version: str, permanent: bool = False) -> int:
        return store.delete_version(subject, parse_version(version), permanent)

    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    def compatible_with_version(
        subject: str, version: str, verbose: bool = False, body: dict = Depends(_json_body)
    ) -> dict:
        reasons = store.compatibility_with(subject, parse_version(version), schema_from_body(body))
        return _compat_answer(reasons, verbose)

    @app.post("/compatibility/subjects/{subject}/versions")
    def compatible_with_all(
        subject: str, verbose: bool = False, body: dict = Depends(_json_body)
    ) -> dict:
        reasons = store.compatibility_all(subject, schema_from_body(body))
        return _compat_answer(reasons, verbose)

    @app.get("/config")
    def get_global_config() -> dict:
        return {"compatibilityLevel": store.level(None)}

    @app.put("/config")
    def put_global_config(body: dict = Depends(_json_body)) -> dict:
        level = level_from_body(body)
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
            raise no_subject_level(subject)
        return {"compatibilityLevel": level}

    @app.put("/config/{subject}")
    def put_subject_config(subject: str, body: dict = Depends(_json_body)) -> dict:
        level = level_from_body(body)
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
    return RegistryJSONResponse({"error_code": error_code, "message": message}, status_code=status)


def _install_basic_auth(app: FastAPI, user: str, password: str) -> None:
    import base64
    import secrets

    expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    @app.middleware("http")
    async def _require_basic_auth(request: Request, call_next):
        given = request.headers.get("authorization", "").encode()
        if request.url.path == "/health" or secrets.compare_digest(given, expected):
            return await call_next(request)
        # Confluent's answer to missing or wrong credentials.
        return _error(40101, "Unauthorized", 401)


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return _error(422, f"Invalid request: {problems}", 422)

    @app.exception_handler(SQLAlchemyError)
    async def _store_error(request: Request, exc: SQLAlchemyError) -> Response:
        log.error("registry: database error", exc_info=exc)
        return _error(50001, "Error in the backend data store", 500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Starlette logs and re-raises after this answer; clients still get Confluent's shape.
        return _error(500, "Internal Server Error", 500)
