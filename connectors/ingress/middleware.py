"""Pure ASGI middleware: request id in and out, request metrics, log context.

Pure ASGI rather than BaseHTTPMiddleware: it sits on every request, and the bridge's
throughput is bounded by per-request Python work (see performance.md).
"""

from __future__ import annotations

import re
import time
import uuid

from mmstream import log
from mmstream.metrics import INGRESS_LATENCY, INGRESS_REQUESTS

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContext:
    """Accept or generate ``X-Request-Id``, echo it, and count the request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _VALID_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        with log.bind(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                source = scope.get("state", {}).get("source", "none")
                INGRESS_REQUESTS.labels(source, route, str(status)).inc()
                INGRESS_LATENCY.labels(source, route).observe(time.perf_counter() - started)
