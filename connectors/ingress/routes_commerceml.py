"""The CommerceML 2.x exchange endpoint ("exchange with site" of 1С УТ 10.3/11).

1С is configured with the URL ``http://<bridge>/1c_exchange`` (``/1c_exchange.php`` works
too: many 1С setups assume the Bitrix name). It authenticates ``checkauth`` with HTTP Basic
and everything after with the session cookie from that answer; the cookie grants the 1c
role for these routes only. Answers are the protocol's plain text: ``success`` or
``failure\\n<reason>`` — 1С reads the first line, so errors cannot use the bridge's JSON
body; the status code still tells what went wrong (401 credentials or session, 400 bad
request or document, 404 file never uploaded or the exchange off, 413 over ``file_limit``
or a cap, 422 invalid entries, 503 Kafka or PostgreSQL unavailable, storage full or too
many sessions, with Retry-After: 1С repeats the exchange), and the X-Error-Code header
names the error for machines. Internal error text (database drivers') stays in the log.

Without ``MM_COMMERCEML__PASSWORD`` the exchange is off: every request answers 404
``commerceml_disabled``, and the bridge logs so at start.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from connectors.commerceml.errors import (
    ArchiveTooLarge,
    BadCredentials,
    BadRequest,
    CommerceMLError,
    DocumentRejected,
    ExchangeDisabled,
    FileNotUploaded,
    InvalidDocument,
    InvalidEntry,
    NoSession,
    StorageFull,
    TooLarge,
)
from connectors.commerceml.exchange import SUCCESS, Exchange, Reply, lines
from connectors.commerceml.files import safe_name
from connectors.commerceml.store import ExchangeStore
from connectors.ingress.auth import authenticates_itself
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.middleware import BodyTooLarge, max_body
from mmstream import log as mmlog
from mmstream.errors import ConfigurationError, DatabaseUnavailable, classify

log = logging.getLogger(__name__)


@asynccontextmanager
async def _announce(app):
    """Say at start whether the exchange is on: an unset password turns it off."""
    cfg = app.state.settings.commerceml
    if cfg.password is None:
        log.warning(
            "commerceml exchange is off: no password is set (MM_COMMERCEML__PASSWORD); "
            "/1c_exchange answers 404 commerceml_disabled"
        )
    else:
        log.info(
            "commerceml exchange is on", extra={"user": cfg.username, "work_dir": str(cfg.work_dir)}
        )
    yield


router = APIRouter(tags=["1С exchange (CommerceML 2.x)"], lifespan=_announce)

# Most specific first: InvalidEntry/DocumentRejected before the InvalidDocument family.
_KINDS: list[tuple[type[CommerceMLError], ErrorKind]] = [
    (ExchangeDisabled, ErrorKind.NOT_FOUND),
    (StorageFull, ErrorKind.DATABASE_UNAVAILABLE),
    (ArchiveTooLarge, ErrorKind.BODY_TOO_LARGE),
    (BadCredentials, ErrorKind.UNAUTHENTICATED),
    (NoSession, ErrorKind.UNAUTHENTICATED),
    (BadRequest, ErrorKind.BAD_REQUEST),
    (TooLarge, ErrorKind.BODY_TOO_LARGE),
    (FileNotUploaded, ErrorKind.UNKNOWN_OBJECT),
    (DocumentRejected, ErrorKind.VALIDATION_FAILED),
    (InvalidEntry, ErrorKind.VALIDATION_FAILED),
    (InvalidDocument, ErrorKind.BAD_REQUEST),
]
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="1c_exchange", charset="UTF-8"'}
_TYPES = ("catalog", "sale")
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_ROUTE: dict[str, Any] = {
    "summary": "1С exchange with site (CommerceML 2.x): type=catalog|sale, mode=checkauth|init|file|"
    "import|query|success|complete",
    "responses": {
        200: {
            "description": "`success` (checkauth: `success`, cookie name, cookie value; init: "
            "`zip=yes|no`, `file_limit=<bytes>`) as text; sale query: the documents queued "
            "for 1С (couriers' instant orders and returns) as one CommerceML 2.08 "
            "document in windows-1251, re-sent until `success`",
            "content": {**_TEXT, "application/xml": {}},
        },
        **{
            status: {
                "description": f"`failure`, the reason, `request_id=…` ({what}); the header "
                "X-Error-Code names the error",
                "content": _TEXT,
            }
            for status, what in (
                (
                    400,
                    "unknown type or mode, bad filename, not a CommerceML document, "
                    "nested too deep, a DOCTYPE, duplicate archive members",
                ),
                (401, "wrong credentials at checkauth, or no valid session cookie"),
                (
                    404,
                    "import of a file this session never uploaded; the exchange is "
                    "off (no password configured)",
                ),
                (
                    413,
                    "more than file_limit bytes in one request, a file, session "
                    "or archive over its cap (zip bomb)",
                ),
                (422, "invalid entries; nothing of the file was published"),
                (
                    503,
                    "Kafka or PostgreSQL unavailable, storage full or too many "
                    "sessions; Retry-After",
                ),
            )
        },
    },
    "response_class": PlainTextResponse,
    # 1С authenticates by the protocol (Basic, then the cookie), and uploads up to file_limit.
    "openapi_extra": authenticates_itself(
        {
            "parameters": [
                {
                    "name": "type",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "enum": ["catalog", "sale"]},
                },
                {
                    "name": "mode",
                    "in": "query",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "enum": [
                            "checkauth",
                            "init",
                            "file",
                            "import",
                            "complete",
                            "deactivate",
                            "query",
                            "success",
                        ],
                    },
                },
                {
                    "name": "filename",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "mode=file and mode=import: the file's name (a relative path)",
                },
            ]
        }
    ),
    "dependencies": [max_body(lambda s: s.commerceml.file_limit_bytes)],
}


def _kind(exc: CommerceMLError) -> ErrorKind:
    return next((kind for cls, kind in _KINDS if isinstance(exc, cls)), ErrorKind.BAD_REQUEST)


def _failure(
    request: Request,
    kind: ErrorKind,
    message: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> Response:
    """The protocol's ``failure`` answer; the status and the X-Error-Code header (the
    error's own code, or the kind's) tell a machine what went wrong."""
    code = code or kind.code
    log.warning("commerceml exchange failed", extra={"code": code, "reason": message})
    reply = lines("failure", message, f"request_id={request.state.request_id}")
    return Response(
        reply.body,
        status_code=kind.status,
        media_type=reply.media_type,
        headers={**(headers or {}), "X-Error-Code": code},
    )


async def _body(request: Request, limit: int) -> bytes:
    """The raw upload, refused beyond ``file_limit`` (1С was told to chunk at that size)."""
    too_large = TooLarge(
        f"one request may carry at most file_limit={limit} bytes; send bigger files in chunks"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except BodyTooLarge:  # the bridge's own body limit (set to file_limit for this route)
        raise too_large from None
    return b"".join(chunks)


async def _serve(request: Request, exchange: Exchange, cml_type: str, mode: str) -> Reply:
    if cml_type not in _TYPES:
        raise BadRequest(f"unknown type {cml_type!r}: expected catalog or sale")
    if mode == "checkauth":
        return await exchange.checkauth(request.headers.get("authorization"))
    session = await exchange.session(request.headers.get("cookie"))
    request.state.principal = session.principal
    with mmlog.bind(principal=session.principal, exchange_session=str(session.id)):
        if mode == "init":
            return await exchange.init(session)
        if mode in ("complete", "deactivate") and cml_type == "catalog":
            # Protocol 3.x end-of-exchange calls; nothing is pending once imports answered.
            return SUCCESS
        if mode == "query" and cml_type == "sale":
            return await exchange.sale_query(session)
        if mode == "success" and cml_type == "sale":
            return await exchange.sale_success(session)
        if mode not in ("file", "import"):
            raise BadRequest(f"unknown mode {mode!r} for type={cml_type}")
        filename = safe_name(request.query_params.get("filename"))
        if mode == "import":
            return await exchange.import_file(session, filename)
        data = await _body(request, exchange.cfg.file_limit_bytes)
        if cml_type == "sale":
            return await exchange.sale_file(session, filename, data)
        await exchange.upload(session, filename, data)
        return SUCCESS


async def exchange_with_site(request: Request) -> Response:
    """One step of 1С's exchange; see the module docstring for the conversation."""
    request.scope.setdefault("state", {})["source"] = "commerceml"
    state = request.app.state
    cml_type = request.query_params.get("type", "").strip().lower()
    mode = request.query_params.get("mode", "").strip().lower()
    retry = {"Retry-After": str(state.settings.ingress.retry_after_s)}
    try:
        cml = state.settings.commerceml
        if cml.password is None:
            raise ExchangeDisabled(
                "the 1С exchange is off on this bridge (no password is configured)"
            )
        if state.engine is None:
            return _failure(
                request,
                ErrorKind.DATABASE_UNAVAILABLE,
                "the exchange needs PostgreSQL: set DATABASE_URL on the bridge",
                retry,
            )
        store = ExchangeStore(
            state.engine,
            cml.session_ttl_s,
            max_file_bytes=cml.max_file_bytes,
            max_session_bytes=cml.max_session_bytes,
            max_total_bytes=cml.max_total_bytes,
            max_sessions=cml.max_sessions,
        )
        exchange = Exchange(
            state.settings, store, state.producer, state.topics, request.state.request_id
        )
        reply = await _serve(request, exchange, cml_type, mode)
    except CommerceMLError as exc:
        kind = _kind(exc)
        headers = _CHALLENGE if kind.status == 401 else retry if kind.status == 503 else None
        return _failure(request, kind, str(exc), headers, exc.code)
    except ApiError as exc:  # the broker did not acknowledge (publish.py): 503 + Retry-After
        return _failure(request, exc.kind, exc.message, exc.headers)
    except Exception as exc:  # every answer to 1С must be a protocol answer
        err = classify(exc)
        # The detail (driver messages name hosts, users, tables) stays in the log: the
        # client may not even be authenticated yet.
        if isinstance(err, (DatabaseUnavailable, ConfigurationError)):
            log.error(
                "commerceml exchange: database unavailable",
                extra={"error": str(err), "error_type": type(exc).__name__},
            )
            return _failure(
                request,
                ErrorKind.DATABASE_UNAVAILABLE,
                "the exchange's database is "
                "unavailable; retry later (the bridge log has the detail under this "
                "request id)",
                retry,
            )
        log.exception("unhandled error in the commerceml exchange")
        return _failure(
            request, ErrorKind.INTERNAL, "internal error; see the bridge log for this request id"
        )
    return Response(reply.body, media_type=reply.media_type)


# The URL 1С is configured with, and the Bitrix name many 1С setups assume; GET and POST alike.
for _path, _documented in (("/1c_exchange", True), ("/1c_exchange.php", False)):
    for _method in ("GET", "POST"):
        router.add_api_route(
            _path,
            exchange_with_site,
            methods=[_method],
            include_in_schema=_documented,
            operation_id=f"commerceml_exchange_{_method.lower()}",
            **_ROUTE,
        )
