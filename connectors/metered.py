"""An httpx transport that counts every call to a target API (mm_egress_calls_total)."""

from __future__ import annotations

import time

import httpx

from mmstream.metrics import EGRESS_CALL_LATENCY, EGRESS_CALLS


class MeteredTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; labels calls by target, API method and status (or timeout/error)."""

    def __init__(self, target: str, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.target = target
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # The API method is the last path segment (Bitrix24: .../catalog.product.add.json):
        # a closed set chosen by our code, so the label stays bounded.
        method = request.url.path.rsplit("/", 1)[-1].removesuffix(".json") or "root"
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TimeoutException:
            EGRESS_CALLS.labels(self.target, method, "timeout").inc()
            raise
        except httpx.TransportError:
            EGRESS_CALLS.labels(self.target, method, "error").inc()
            raise
        finally:
            EGRESS_CALL_LATENCY.labels(self.target, method).observe(time.perf_counter() - started)
        EGRESS_CALLS.labels(self.target, method, str(response.status_code)).inc()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
