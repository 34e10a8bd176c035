"""The ingress bridge: FastAPI app factory, what applies to every route, and the probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager
from enum import Enum

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.ingress import (
    openapi,
    routes_admin_trace,
    routes_bitrix24,
    routes_commerceml,
    routes_onec,
)
from connectors.ingress.auth import Authenticate, authenticated, authenticates_itself
from connectors.ingress.database import bridge_engine
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.health import ReadinessCheck
from connectors.ingress.idempotency import Idempotency
from connectors.ingress.middleware import BodyLimit, RequestContext, error_body
from connectors.ingress.purge import run_purge
from connectors.ingress.ratelimit import Limits, RateLimit
from connectors.onec.nomenclature import OneCNomenclature
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import UP
from mmstream.settings import Settings
from mmstream.topics import load_catalog

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Source systems (1С, Bitrix24) push changes here. A 2xx means the change is stored in Kafka
(acks=all); when Kafka or the database cannot answer in time the bridge says 503 with
Retry-After and stores nothing.

- **Authentication**: `Authorization: Bearer <JWT>` (roles 1c, courier, admin) or
  `X-API-Key: <key>` on every route, except the ones that say otherwise (probes, and sources
  that authenticate by their own protocol).
- **Errors**: `{"error": {"code", "message", "details"}, "request_id"}`.
- **X-Request-Id**: sent or generated, echoed on every answer, carried in the Kafka headers
  of the records and in every log line.
- **Idempotency-Key** on any POST: a re-sent request gets the first answer again.
- **Limits**: bodies up to `ingress.max_body_bytes` unless a route says otherwise (413);
  records up to `ingress.max_record_bytes` (413 `record_too_large`); JSON up to
  `ingress.max_json_depth` levels (400 `json_too_deep`); per-caller rate limit (429 +
  Retry-After), per bridge replica: by token subject or API key, by portal for verified
  Bitrix24 events, by session for CommerceML, and by address, apart, for unverified requests.
"""
_OPEN = authenticates_itself()


class Status(BaseModel):
    """A probe's answer."""

    status: str
    reason: str | None = None


def create_app(settings: Settings, *, producer: AckedProducer | None = None) -> FastAPI:
    """Build the bridge. Without a producer given, one is created (and closed) by the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Every raw topic of the topic file, by logical name -> physical name.
        catalog = load_catalog(settings.topics_file)
        topics = {
            name: settings.topic(name)
            for name, spec in catalog.topics.items()
            if spec.role == "raw"
        }
        # A missing topic on the embedded broker would be auto-created with the wrong
        # partition count and acknowledged unreadable: refuse to start instead.
        require_topics(settings, list(topics.values()))
        app.state.topics = topics
        app.state.producer = producer or AckedProducer(settings.kafka, client_id="mm-bridge")
        # Idempotency keys, exchange message numbers, event dedupe and CommerceML sessions
        # live in PostgreSQL so that every bridge replica sees them.
        # Connect and statement timeouts: a stalled PostgreSQL gives 503s, not hung requests.
        app.state.engine = bridge_engine(settings) if settings.database_url else None
        # Bitrix24 event dedupe holds its claim's transaction while the event is published
        # (a near-duplicate must wait for the outcome: Bitrix24 never re-sends). Its own pool,
        # so that a stalled broker can never take the connections 1С's pushes need.
        app.state.event_engine = bridge_engine(settings) if settings.database_url else None
        purge = (
            asyncio.create_task(run_purge(app.state.engine, settings), name="bridge-purge")
            if app.state.engine is not None
            else None
        )
        UP.labels("bridge").set(1)
        log.info("bridge ready", extra={"topics": list(topics.values())})
        try:
            yield
        finally:
            UP.labels("bridge").set(0)
            if purge is not None:
                purge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purge
            if producer is None:
                app.state.producer.close()
            for engine in (app.state.engine, app.state.event_engine):
                if engine is not None:
                    await engine.dispose()

    app = FastAPI(
        title="MasterMobile Stream ingress bridge",
        version="1.0.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        # Deny by default: a route without its own authentication needs a token or API key.
        dependencies=[Depends(authenticated)],
        openapi_tags=[
            {
                "name": openapi.OPERATIONS_TAG,
                "description": "Probes and metrics, without authentication: scraped and probed from inside "
                "the cluster; keep them off the public ingress.",
            }
        ],
    )
    app.state.settings = settings
    # Rate-limit buckets, shared by the middleware and the routes that limit themselves once
    # they verified their caller (Bitrix24 events); see ratelimit.py.
    app.state.limits = Limits(settings)
    # Added innermost first. A request passes: request id and log context -> who is calling
    # -> rate limit -> body limit -> idempotency key -> routing (auth check, route).
    app.add_middleware(Idempotency, settings=settings)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(RateLimit, settings=settings, limits=app.state.limits)
    app.add_middleware(Authenticate, settings=settings)
    app.add_middleware(RequestContext)
    app.include_router(routes_onec.router)
    app.include_router(routes_commerceml.router)
    app.include_router(routes_bitrix24.router)
    app.include_router(routes_admin_trace.router)
    _add_error_handlers(app)
    _add_operations_routes(app, settings)
    _add_openapi(app)
    return app


def _error(
    request: Request,
    kind: ErrorKind,
    message: str,
    details: list | None = None,
    status: int | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    body = error_body(getattr(request.state, "request_id", ""), kind, message, details)
    return JSONResponse(body, status_code=status or kind.status, headers=headers)


# Statuses Starlette / FastAPI raise themselves (routing, body limits), by error kind.
_HTTP_KINDS = {
    400: ErrorKind.BAD_REQUEST,
    401: ErrorKind.UNAUTHENTICATED,
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    413: ErrorKind.BODY_TOO_LARGE,
    415: ErrorKind.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorKind.RATE_LIMITED,
}


def _add_error_handlers(app: FastAPI) -> None:
    # Unexpected exceptions are answered by RequestContext (inside the request's log context).

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.kind, exc.message, exc.details, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code)
        if kind is None:
            kind = ErrorKind.INTERNAL if exc.status_code >= 500 else ErrorKind.VALIDATION_FAILED
        return _error(
            request,
            kind,
            str(exc.detail),
            status=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        return _error(request, ErrorKind.VALIDATION_FAILED, "invalid request", details)


def _add_operations_routes(app: FastAPI, settings: Settings) -> None:
    tags: list[str | Enum] = [openapi.OPERATIONS_TAG]  # FastAPI's list type is invariant

    @app.get(
        "/health/live",
        tags=tags,
        summary="The process is up",
        openapi_extra=_OPEN,
        response_model=Status,
    )
    async def live() -> dict:
        return {"status": "ok"}

    readiness = ReadinessCheck(lambda: require_topics(settings, list(app.state.topics.values())))

    @app.get(
        "/health/ready",
        tags=tags,
        summary="Kafka reachable and topics present",
        openapi_extra=_OPEN,
        response_model=Status,
        responses={503: {"model": Status, "description": "not ready, with the reason"}},
    )
    async def ready() -> JSONResponse:
        reason = await readiness.check()
        if reason:
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ok"})

    # Open on purpose: Prometheus scrapes the bridge's port from inside the cluster without
    # credentials (deploy/prometheus, pod annotations). The figures are counts and latencies
    # by route and status, no ids or payloads; do not route /metrics through a public ingress.
    @app.get(
        "/metrics",
        tags=tags,
        summary="Prometheus metrics",
        openapi_extra=_OPEN,
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _add_openapi(app: FastAPI) -> None:
    """Publish the record models (bodies are parsed by hand) and what every route shares."""
    original = app.openapi

    def document() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps["OneCNomenclature"] = OneCNomenclature.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
        app.openapi_schema = openapi.finish(schema)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
