"""Pure ASGI middleware every request passes: request id, log context, metrics, body limit.

Pure ASGI rather than BaseHTTPMiddleware: it sits on every request, and the bridge's
throughput is bounded by per-request Python work (see performance.md).

The body limit is global (form, XML and binary routes get it too, not only JSON ones). A route
that legitimately takes more, e.g. CommerceML ``mode=file`` uploads, raises its own limit in
its decorator::

    @router.post("/exchange", dependencies=[max_body(lambda s: s.commerceml.file_limit_bytes)])
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from fastapi import Depends, params
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from connectors.ingress.errors import ApiError, ErrorKind
from mmstream import log as mmlog
from mmstream.metrics import INGRESS_LATENCY, INGRESS_REQUESTS
from mmstream.settings import Settings
from mmstream.trace.context import valid_traceparent

log = logging.getLogger(__name__)

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def error_body(request_id: str, kind: ErrorKind, message: str, details: list | None = None) -> dict:
    """The one error body of the bridge: ``{error: {code, message, details}, request_id}``."""
    return {
        "error": {"code": kind.code, "message": message, "details": details or []},
        "request_id": request_id,
    }


async def send_error(scope, receive, send, exc: ApiError) -> None:
    """Answer ``exc`` from a middleware, with the same body the app's handlers write."""
    request_id = scope.get("state", {}).get("request_id", "")
    response = JSONResponse(
        error_body(request_id, exc.kind, exc.message, exc.details),
        status_code=exc.kind.status,
        headers=exc.headers,
    )
    await response(scope, receive, send)


class RequestContext:
    """Accept or generate ``X-Request-Id``, echo it, bind it to the log, count the request.

    Also the last resort for unexpected errors: answered 500 with the error body and logged
    with the request id (Starlette's own handler would run outside the log context).
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _VALID_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        # An upstream W3C trace (1С, Bitrix24 or a proxy in front): bound to the log context,
        # so the records this request publishes carry it (mmstream/envelope.py) and the calls
        # made for them continue the trace. An invalid one is ignored, as the spec says.
        upstream = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), ""
        )
        upstream = upstream.strip().lower() if valid_traceparent(upstream.strip().lower()) else ""
        status, started_response = 500, False
        started = time.perf_counter()

        async def send_with_id(message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with mmlog.bind(request_id=request_id, traceparent=upstream):
            try:
                await self.app(scope, receive, send_with_id)
            except ClientDisconnect:
                # The client left before its body was read (a timeout, a slow-client attack):
                # nobody is there to answer and nothing was stored; not a server error.
                # 499, as nginx counts it.
                log.info("client disconnected before sending its whole request")
                if not started_response:
                    status = 499
            except Exception:
                log.exception("unhandled error in the bridge")
                if started_response:
                    raise
                await send_error(
                    scope,
                    receive,
                    send_with_id,
                    ApiError(
                        ErrorKind.INTERNAL, "internal error; see the bridge log for this request id"
                    ),
                )
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                source = scope.get("state", {}).get("source", "none")
                INGRESS_REQUESTS.labels(source, route, str(status)).inc()
                INGRESS_LATENCY.labels(source, route).observe(time.perf_counter() - started)


class BodyTooLarge(StarletteHTTPException):
    """A request body passed its limit; raised from ``receive`` so nothing more is read.

    An HTTPException so that FastAPI's body parsing re-raises it unchanged and the app's
    handler answers 413 ``body_too_large``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit} bytes")


class _MaxBody:
    """Marker dependency carrying a route's body limit (see :func:`max_body`); does nothing."""

    def __init__(self, limit: Callable[[Settings], int]) -> None:
        self.limit = limit

    async def __call__(self) -> None:  # async: a plain def would run in the thread pool
        return None


def max_body(limit: Callable[[Settings], int]) -> params.Depends:
    """Declare a route's own body limit, read from the settings; put it in the route decorator's
    ``dependencies`` (or its APIRouter's). Without it a route gets ``ingress.max_body_bytes``."""
    return Depends(_MaxBody(limit))


class BodyLimit:
    """Pure ASGI middleware: 413 before more than the route's limit is read.

    The limit is looked up on every ``receive`` because the route is known only once routing
    ran: reads before routing (the idempotency middleware buffering a body) get the default
    limit, reads by a route get the route's. A declared Content-Length over the limit is
    refused before a byte is read.
    """

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._limits: dict[int, int] = {}

    def limit_for(self, route: object) -> int:
        """The body limit of a route (the default when it declares none, or none is known)."""
        if route is None:
            return self.settings.ingress.max_body_bytes
        key = id(route)
        if key not in self._limits:
            marks = [
                d.dependency
                for d in getattr(route, "dependencies", [])
                if isinstance(d.dependency, _MaxBody)
            ]
            self._limits[key] = (
                marks[-1].limit(self.settings) if marks else self.settings.ingress.max_body_bytes
            )
        return self._limits[key]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        declared_size = int(declared) if declared.isdigit() else None
        received = 0

        async def limited_receive():
            nonlocal received
            limit = self.limit_for(scope.get("route"))
            if declared_size is not None and declared_size > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
