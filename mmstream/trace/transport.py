"""The httpx transport of the egress clients: trace headers out, one integration-log entry
per attempt.

It wraps the client's real transport (connectors/bitrix24/client.py,
connectors/onec/client.py), so it sees every request — including the OAuth token refresh —
and every failure to get an answer, which event hooks do not. The response body is read
here (the clients read every answer whole anyway) to keep an excerpt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import unquote

import httpx

from mmstream import log as logctx
from mmstream.trace import journal as journals
from mmstream.trace.context import TRACEPARENT_HEADER, current_ids, outbound_headers, traceparent
from mmstream.trace.masking import mask_body, mask_target_url, mask_text

log = logging.getLogger(__name__)


def last_segment(request: httpx.Request) -> str:
    """The operation of a Bitrix24 REST call: the method, the last path segment (``.json``
    dropped); the webhook code sits earlier in the path and never gets here."""
    name = unquote(request.url.path.rstrip("/").rsplit("/", 1)[-1])
    return name[:-5] if name.endswith(".json") else name


def after_marker(*patterns: str) -> Callable[[httpx.Request], str]:
    """The operation of a 1С call: the path after the service's or OData's root (the first
    group of the first of ``patterns`` that matches the path)."""
    compiled = [re.compile(p) for p in patterns]

    def operation(request: httpx.Request) -> str:
        path = unquote(request.url.path)
        for pattern in compiled:
            m = pattern.search(path)
            if m and m.group(1):
                return mask_text(m.group(1))[:200]
        return last_segment(request)

    return operation


class TracingTransport(httpx.AsyncBaseTransport):
    """Adds ``X-Request-Id`` / ``traceparent`` and logs the attempt to the integration log."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None,
        target: str,
        *,
        operation: Callable[[httpx.Request], str] = last_segment,
        journal: journals.Journal | None | bool = True,
    ) -> None:
        # None: the default transport httpx would have made (proxies from the environment
        # are mounted by the client beside this transport and are not traced).
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self.target = target
        self._operation = operation
        # True: the running loop's journal (journal.current()); None/False: no log.
        self._journal = journal

    def _journal_now(self) -> journals.Journal | None:
        if self._journal is True:
            try:
                return journals.current()
            except Exception as exc:  # noqa: BLE001 — unreadable settings: no log, no failure
                log.warning("integration log unavailable", extra={"error": type(exc).__name__})
                self._journal = None
                return None
        return self._journal or None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for name, value in outbound_headers().items():
            if name != TRACEPARENT_HEADER or TRACEPARENT_HEADER not in request.headers:
                request.headers[name] = value
        journal = self._journal_now()
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
            if journal is not None:
                await response.aread()
        except Exception as exc:
            if journal is not None:
                self._record(journal, request, started, None, error=type(exc).__name__)
            raise
        if journal is not None:
            self._record(journal, request, started, response)
        return response

    def _record(
        self,
        journal: journals.Journal,
        request: httpx.Request,
        started: float,
        response: httpx.Response | None,
        *,
        error: str = "",
    ) -> None:
        limit = journal.excerpt_chars
        try:
            sent = request.content
        except httpx.RequestNotRead:
            sent = b""
        answer = ""
        if response is not None:
            answer = mask_body(response.content, response.headers.get("content-type", ""), limit)
        journal.offer(
            journals.Entry(
                target=self.target,
                operation=self._operation(request)[:200],
                http_method=request.method,
                url=mask_target_url(str(request.url))[:1000],
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                status=response.status_code if response is not None else None,
                error=error,
                request=mask_body(sent, request.headers.get("content-type", ""), limit),
                response=answer,
                event_id=current_ids()[0],
                request_id=request.headers.get("x-request-id", ""),
                traceparent=request.headers.get(TRACEPARENT_HEADER, ""),
            )
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
        # Written before the worker's loop ends: a shutdown loses no queued entry.
        journal = journals.existing() if self._journal is True else (self._journal or None)
        if journal is not None:
            # Bounded: a stalled database must not hold a worker's shutdown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(journal.flush(), 5)


def record_command(
    target: str,
    method: str,
    url: str,
    params: object,
    *,
    started: float,
    result: object = None,
    error: BaseException | None = None,
) -> None:
    """Log one command a ``batch`` request carried, in the context of the change that sent
    it (its event and request id): the batch request itself is logged by the transport
    with the ids of all its commands."""
    try:
        journal = journals.current()
    except Exception:  # noqa: BLE001 — no settings, no log (the transport said so once)
        return
    if journal is None:
        return
    import json

    event_id, request_id = current_ids()
    limit = journal.excerpt_chars
    status = None if error is not None else 200
    if error is not None:
        status = getattr(error, "status", None)
    journal.offer(
        journals.Entry(
            target=target,
            operation=method[:200],
            http_method="BATCH",
            url=mask_target_url(url)[:1000],
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            status=status,
            error="" if error is None else (getattr(error, "code", "") or type(error).__name__),
            request=mask_body(
                json.dumps(params, ensure_ascii=False, default=str), "application/json", limit
            ),
            response=(
                ""
                if error is not None
                else mask_body(
                    json.dumps(result, ensure_ascii=False, default=str), "application/json", limit
                )
            ),
            event_id=event_id,
            request_id=request_id,
            traceparent=traceparent(event_id, request_id, logctx.current("traceparent")),
        )
    )
