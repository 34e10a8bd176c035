"""The ingress bridge: FastAPI app factory, error mapping and health endpoints."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.ingress import routes_bitrix24, routes_commerceml, routes_onec
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.health import ReadinessCheck
from connectors.ingress.middleware import RequestContext
from mmstream.db.engine import async_engine
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import UP
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from streams.normalize.onec_product import OneCNomenclature

log = logging.getLogger(__name__)


def _error_body(request: Request, kind: ErrorKind, message: str, details: list | None = None) -> dict:
    return {"error": {"code": kind.code, "message": message, "details": details or []},
            "request_id": getattr(request.state, "request_id", "")}


def create_app(settings: Settings, *, producer: AckedProducer | None = None) -> FastAPI:
    """Build the bridge. Without a producer given, one is created (and closed) by the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Every raw topic of the topic file, by logical name -> physical name.
        catalog = load_catalog(settings.topics_file)
        topics = {name: settings.topic(name) for name, spec in catalog.topics.items() if spec.role == "raw"}
        # A missing topic on the embedded broker would be auto-created with the wrong
        # partition count and acknowledged unreadable: refuse to start instead.
        require_topics(settings, list(topics.values()))
        app.state.topics = topics
        app.state.producer = producer or AckedProducer(settings.kafka, client_id="mm-bridge")
        # Idempotency keys, exchange message numbers, event dedupe and CommerceML sessions
        # live in PostgreSQL so that every bridge replica sees them.
        app.state.engine = async_engine(settings) if settings.database_url else None
        UP.labels("bridge").set(1)
        log.info("bridge ready", extra={"topics": list(topics.values())})
        try:
            yield
        finally:
            UP.labels("bridge").set(0)
            if producer is None:
                app.state.producer.close()
            if app.state.engine is not None:
                await app.state.engine.dispose()

    app = FastAPI(
        title="MasterMobile Stream ingress bridge",
        version="1.0.0",
        description="Source systems (1C, Bitrix24) push changes here. A 2xx means the change "
        "is stored in Kafka (acks=all). Errors: `{error: {code, message, details}, request_id}`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(RequestContext)
    app.include_router(routes_onec.router)
    app.include_router(routes_commerceml.router)
    app.include_router(routes_bitrix24.router)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(request, exc.kind, exc.message, exc.details),
                            status_code=exc.kind.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: ErrorKind.NOT_FOUND, 405: ErrorKind.METHOD_NOT_ALLOWED}.get(exc.status_code)
        if kind is None:
            kind = ErrorKind.INTERNAL if exc.status_code >= 500 else ErrorKind.VALIDATION_FAILED
        return JSONResponse(_error_body(request, kind, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        return JSONResponse(_error_body(request, ErrorKind.VALIDATION_FAILED, "invalid request", details),
                            status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in the bridge")
        return JSONResponse(_error_body(request, ErrorKind.INTERNAL, "internal error; see the bridge log "
                                        "for this request id"), status_code=500)

    @app.get("/health/live", tags=["health"], summary="The process is up")
    async def live() -> dict:
        return {"status": "ok"}

    readiness = ReadinessCheck(lambda: require_topics(settings, list(app.state.topics.values())))

    @app.get("/health/ready", tags=["health"], summary="Kafka reachable and topics present")
    async def ready() -> JSONResponse:
        reason = await readiness.check()
        if reason:
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    _add_schema_components(app)
    return app


def _add_schema_components(app: FastAPI) -> None:
    """Publish the record models in the OpenAPI document (bodies are parsed by hand)."""
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps["OneCNomenclature"] = OneCNomenclature.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
