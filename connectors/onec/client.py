"""An async client of a 1С base for egress: our extension's HTTP service, and documents
through the standard OData interface (read, create, change, post — the write mode of a
stock base without the extension, stages/egress/onec_odata.py; that half is
connectors/onec/odata_write.py).

Every write carries ``Idempotency-Key`` = the caller's stable event id, so repeating it
after a timeout or a 5xx is safe: 1С answers the first result again (200) instead of
writing twice (the contract: http_service.openapi.yaml). Each call first consults the
base's circuit breaker (open: :class:`~mmstream.errors.CircuitOpen`, nothing sent), makes
ONE attempt and returns the result or raises the error :mod:`connectors.onec.errors`
chose. Retrying is the caller's job (``mmstream.retry``), guided by ``retriable`` and
``retry_after``.

Basic auth with the integration user; the password appears in no log line and no error
text (httpx exceptions are not chained: they carry the request).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx

from connectors.onec.errors import (
    OneCError,
    OneCInProgress,
    OneCObjectLocked,
    OneCServerError,
    OneCTransportError,
    error_from_response,
)
from connectors.onec.odata.errors import ODataError
from connectors.onec.odata_write import ODataDocuments
from connectors.onec.wire import TARGET, decode, guid
from mmstream.circuit import CircuitBreaker, Verdict, shared_breaker
from mmstream.errors import ConfigurationError
from mmstream.metrics import EGRESS_CALL_LATENCY, EGRESS_CALLS, EGRESS_ERRORS
from mmstream.settings import OneCSettings
from mmstream.trace.transport import TracingTransport, after_marker

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[A-Za-z0-9._:~-]{1,200}$")


class Operation(StrEnum):
    """The HTTP service's writes (the values label metrics: a closed set)."""

    DELIVERY_STATUS = "delivery_status"
    INSTANT_ORDER = "instant_order"
    RETURN = "return"
    CASH_DOCUMENT = "cash_document"
    ADVANCE_REPORT = "advance_report"


@dataclass(frozen=True)
class DocumentRef:
    """A 1С document as the service names it."""

    type: str  # the OData entity set, e.g. Document_ЗаказКлиента
    ref_key: str
    number: str
    date: str
    posted: bool


@dataclass(frozen=True)
class WriteResult:
    """What 1С answered a write; ``replayed`` when the key had served it before (HTTP 200)."""

    idempotency_key: str
    operation: str
    document: DocumentRef
    created_at: str
    replayed: bool
    raw: dict[str, Any]

    @classmethod
    def from_body(cls, body: dict[str, Any], *, replayed: bool) -> WriteResult:
        doc = body["document"]
        return cls(
            idempotency_key=str(body["idempotency_key"]),
            operation=str(body["operation"]),
            document=DocumentRef(
                type=str(doc["type"]),
                ref_key=str(doc["ref_key"]).lower(),
                number=str(doc["number"]),
                date=str(doc["date"]),
                posted=bool(doc["posted"]),
            ),
            created_at=str(body["created_at"]),
            replayed=replayed,
            raw=body,
        )


def circuit_verdict(exc: BaseException | None) -> Verdict:
    """How a 1С outcome counts for the base's circuit breaker."""
    if exc is None:
        return Verdict.SUCCESS
    if isinstance(exc, (OneCObjectLocked, OneCInProgress)):
        return Verdict.NEUTRAL  # one object is busy, not the base
    if isinstance(exc, (OneCError, ODataError)):
        return Verdict.FAILURE if exc.retriable else Verdict.SUCCESS
    return Verdict.NEUTRAL  # our own bug, not the base's health


class OneCClient(ODataDocuments):
    """Calls one 1С base's integration HTTP service, and its documents over standard OData
    (connectors/onec/odata_write.py: read, create, change, ``/Post``)."""

    def __init__(
        self,
        settings: OneCSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._settings = settings
        self._base = _http_base(settings.base_url, "MM_ONEC__BASE_URL")
        self._odata = _http_base(
            settings.odata_url or odata_url_of(self._base), "MM_ONEC__ODATA_URL"
        )
        self._tz = ZoneInfo(settings.timezone)
        password = settings.password.get_secret_value()
        self._http = httpx.AsyncClient(
            # X-Request-Id / traceparent on every call, each attempt in the integration log.
            transport=TracingTransport(
                transport,
                TARGET,
                operation=after_marker(r"/standard\.odata/(.+)", r"/hs/[^/]+/(.+)"),
            ),
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            auth=httpx.BasicAuth(settings.username, password) if settings.username else None,
            headers={"Accept": "application/json"},
            # A redirect would carry the credentials to wherever it points.
            follow_redirects=False,
        )
        circuit = settings.circuit
        self._breaker = breaker or shared_breaker(
            TARGET,
            scope=urlsplit(self._base).netloc,
            failure_threshold=circuit.failure_threshold,
            cool_down_s=circuit.cool_down_s,
            max_cool_down_s=circuit.max_cool_down_s,
            verdict=circuit_verdict,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        """The base's circuit breaker (shared by the clients of this worker)."""
        return self._breaker

    # --- the HTTP service's operations ----------------------------------------------------

    async def confirm_delivery(
        self, key: str, task_id: UUID | str, body: Mapping[str, Any]
    ) -> WriteResult:
        """Record a delivery task's status (delivered / failed / cancelled) on its order or
        shipment. ``body``: DeliveryStatus of the contract."""
        task = guid(task_id, "task_id")
        return await self._write(
            Operation.DELIVERY_STATUS, f"delivery-tasks/{task}/status", key, body
        )

    async def create_instant_order(self, key: str, body: Mapping[str, Any]) -> WriteResult:
        """Create the ЗаказКлиента / РеализацияТоваровУслуг of a courier's instant order."""
        return await self._write(Operation.INSTANT_ORDER, "instant-orders", key, body)

    async def create_return(self, key: str, body: Mapping[str, Any]) -> WriteResult:
        """Create the return document of a courier's return."""
        return await self._write(Operation.RETURN, "returns", key, body)

    async def create_cash_document(self, key: str, body: Mapping[str, Any]) -> WriteResult:
        """Create (and by default post) a ПКО (``kind: cash_receipt``) or РКО (``cash_expense``)."""
        return await self._write(Operation.CASH_DOCUMENT, "cash-documents", key, body)

    async def create_advance_report(self, key: str, body: Mapping[str, Any]) -> WriteResult:
        """Create (and by default post) an advance report."""
        return await self._write(Operation.ADVANCE_REPORT, "advance-reports", key, body)

    async def operation(self, key: str) -> WriteResult | None:
        """The result of the write made under ``key``, or None when none succeeded (after a
        lost answer: did it happen?)."""
        _check_key(key)
        response = await self._request(
            "operation", "GET", f"{self._base}operations/{quote(key, safe='')}"
        )
        if response.status_code == 404:
            body = decode(response)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                return None
        return self._result("operation", response, replayed=True)

    async def ping(self) -> None:
        """Raise unless the service answers and accepts the user."""
        response = await self._request("ping", "GET", f"{self._base}ping")
        if response.status_code != 200:
            raise self._failure("ping", response)

    # --- plumbing ------------------------------------------------------------------------

    async def _write(
        self, operation: Operation, path: str, key: str, body: Mapping[str, Any]
    ) -> WriteResult:
        _check_key(key)
        payload = json.dumps(self._jsonable(body), ensure_ascii=False).encode()
        response = await self._request(
            operation.value,
            "POST",
            f"{self._base}{path}",
            content=payload,
            headers={"Idempotency-Key": key, "Content-Type": "application/json; charset=utf-8"},
        )
        result = self._result(operation.value, response, replayed=response.status_code == 200)
        log.info(
            "1c write",
            extra={
                "operation": operation.value,
                "idempotency_key": key,
                "replayed": result.replayed,
                "ref_key": result.document.ref_key,
                "number": result.document.number,
            },
        )
        return result

    async def _request(
        self, operation: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        """One attempt under the breaker; the answer is judged by :meth:`_result`, so a
        failure must be raised inside the guard for the breaker to count it."""
        with self._breaker.guard():
            response = await self._send(operation, method, url, **kwargs)
            if not (response.is_success or self._is_absent(response)):
                raise self._failure(operation, response)
            return response

    @staticmethod
    def _is_absent(response: httpx.Response) -> bool:
        # GET /operations/{key} answering not_found is an answer, not a failure.
        if response.status_code != 404 or response.request.method != "GET":
            return False
        body = decode(response)
        return isinstance(body, dict) and isinstance(body.get("error"), dict)

    async def _send(
        self, operation: str, method: str, url: str, *, transport_error: Any = None, **kwargs: Any
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            outcome = "timeout" if isinstance(exc, httpx.TimeoutException) else "error"
            EGRESS_CALLS.labels(TARGET, operation, outcome).inc()
            err = (
                transport_error(type(exc).__name__)
                if transport_error is not None
                else OneCTransportError(
                    None, type(exc).__name__, "no answer from 1С", operation=operation
                )
            )
            EGRESS_ERRORS.labels(TARGET, err.code).inc()
            log.warning(
                "1c call failed",
                extra={
                    "operation": operation,
                    "error_code": err.code,
                    "error": type(exc).__name__,
                    "retriable": True,
                },
            )
            # `from None`: httpx exceptions carry the request.
            raise err from None
        finally:
            EGRESS_CALL_LATENCY.labels(TARGET, operation).observe(time.perf_counter() - started)
        EGRESS_CALLS.labels(TARGET, operation, str(response.status_code)).inc()
        return response

    def _result(self, operation: str, response: httpx.Response, *, replayed: bool) -> WriteResult:
        body = decode(response)
        try:
            return WriteResult.from_body(body, replayed=replayed)
        except (TypeError, KeyError):
            err = OneCServerError(
                response.status_code,
                "",
                "the answer is not an operation result",
                operation=operation,
            )
            EGRESS_ERRORS.labels(TARGET, err.code).inc()
            raise err from None

    def _failure(self, operation: str, response: httpx.Response) -> OneCError:
        err = error_from_response(
            response.status_code, decode(response), headers=response.headers, operation=operation
        )
        self._log_failure(operation, response.status_code, err)
        return err

    @staticmethod
    def _log_failure(operation: str, status: int, err: OneCError | ODataError) -> None:
        EGRESS_ERRORS.labels(TARGET, err.code).inc()
        emit = log.error if err.alert else log.warning
        emit(
            "1c call failed",
            extra={
                "operation": operation,
                "status": status,
                "error_code": err.code,
                "retriable": err.retriable,
                "retry_after": err.retry_after,
                "error": str(err)[:300],
            },
        )

    def _jsonable(self, value: Any) -> Any:
        """JSON-ready copy: UUIDs as text, money as numbers, datetimes as 1С dates (aware
        ones converted to the base's time zone)."""
        if isinstance(value, Mapping):
            # None means "not given": the contract has no nullable fields.
            return {str(k): self._jsonable(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [self._jsonable(v) for v in value]
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, datetime):
            return onec_datetime(value, self._tz)
        if isinstance(value, date):
            return f"{value.isoformat()}T00:00:00"
        if isinstance(value, Enum):
            return value.value
        return value

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> OneCClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def onec_datetime(value: datetime, tz: ZoneInfo) -> str:
    """A 1С date: wall-clock time of the base's zone, no offset, whole seconds."""
    if value.tzinfo is not None:
        value = value.astimezone(tz).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat()


def odata_url_of(base_url: str) -> str:
    """The standard OData root of the publication serving ``base_url`` (``…/hs/<root>/``)."""
    parts = urlsplit(base_url)
    publication, sep, _ = parts.path.partition("/hs/")
    if not sep:
        raise ConfigurationError("MM_ONEC__ODATA_URL is needed: MM_ONEC__BASE_URL has no /hs/ part")
    return urlunsplit((parts.scheme, parts.netloc, f"{publication}/odata/standard.odata/", "", ""))


def _http_base(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{name} must be an http(s) URL, got {url!r}")
    if parts.username or parts.password:
        # Credentials belong in MM_ONEC__USERNAME / __PASSWORD, never in a URL that gets logged.
        raise ConfigurationError(f"{name} must not carry credentials")
    return url if url.endswith("/") else url + "/"


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"not a valid Idempotency-Key: {key!r}")


__all__ = [
    "DocumentRef",
    "OneCClient",
    "Operation",
    "WriteResult",
    "circuit_verdict",
    "odata_url_of",
    "onec_datetime",
]
