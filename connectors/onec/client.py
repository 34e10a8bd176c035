"""An async client of a 1С base for egress: our extension's HTTP service, and documents
through the standard OData interface (read, create, change, post — the write mode of a
stock base without the extension, streams/egress/onec_odata.py).

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
    parse_retry_after,
    posting_error_from_response,
)
from connectors.onec.odata.errors import (
    ODataError,
    ODataServerError,
    ODataTransportError,
)
from mmstream.circuit import CircuitBreaker, Verdict, shared_breaker
from mmstream.errors import ConfigurationError
from mmstream.metrics import EGRESS_CALL_LATENCY, EGRESS_CALLS, EGRESS_ERRORS
from mmstream.settings import OneCSettings
from mmstream.trace.transport import TracingTransport, after_marker

log = logging.getLogger(__name__)

#: The target label of this client's metrics and circuit (one breaker per base).
TARGET = "onec"

_KEY_RE = re.compile(r"^[A-Za-z0-9._:~-]{1,200}$")
_ENTITY_SET_RE = re.compile(r"^Document_\w+$")
_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


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


class ODataDocumentMissing(ODataError):
    """The base holds no document with this Ref_Key (PATCH answered 404): the order or
    shipment a delivery names was deleted in 1С or never reached it. Repeating cannot
    help; check the document in 1С, then replay."""

    code = "onec_odata_document_missing"


def circuit_verdict(exc: BaseException | None) -> Verdict:
    """How a 1С outcome counts for the base's circuit breaker."""
    if exc is None:
        return Verdict.SUCCESS
    if isinstance(exc, (OneCObjectLocked, OneCInProgress)):
        return Verdict.NEUTRAL  # one object is busy, not the base
    if isinstance(exc, (OneCError, ODataError)):
        return Verdict.FAILURE if exc.retriable else Verdict.SUCCESS
    return Verdict.NEUTRAL  # our own bug, not the base's health


class OneCClient:
    """Calls one 1С base's integration HTTP service (and its OData ``/Post``)."""

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
        task = _guid(task_id, "task_id")
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
            body = _decode(response)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                return None
        return self._result("operation", response, replayed=True)

    async def ping(self) -> None:
        """Raise unless the service answers and accepts the user."""
        response = await self._request("ping", "GET", f"{self._base}ping")
        if response.status_code != 200:
            raise self._failure("ping", response)

    async def document_posted(self, entity_set: str, ref_key: UUID | str) -> bool | None:
        """Whether 1С holds the document posted: ``GET {odata}/Document_X(guid'…')?$select=Posted``;
        None when 1С does not have it. Read before posting: a delivery that posted and then
        died before recording it must not post the document a second time."""
        url = self._document_url(entity_set, ref_key) + "?$format=json&$select=Posted"
        with self._breaker.guard():
            response = await self._send(
                "odata_get",
                "GET",
                url,
                transport_error=lambda name: ODataTransportError(
                    None, message=f"{name}: no answer from 1С", entity_set=entity_set
                ),
            )
            if response.status_code == 404:
                return None
            if not response.is_success:
                body = _decode(response)
                err = posting_error_from_response(response.status_code, body, entity_set=entity_set)
                if isinstance(err, ODataServerError):
                    err.retry_after = parse_retry_after(response.headers.get("retry-after"))
                self._log_failure("odata_get", response.status_code, err)
                raise err
        body = _decode(response)
        return bool(body.get("Posted")) if isinstance(body, dict) else None

    async def post_document(
        self, entity_set: str, ref_key: UUID | str, *, operational: bool = False
    ) -> None:
        """Post a document through the standard OData interface:
        ``POST {odata}/Document_X(guid'…')/Post?PostingModeOperational=false``.

        Posting a posted document re-posts it (1С allows it), so a repeat is harmless.
        Raises an :class:`~connectors.onec.odata.errors.ODataError`:
        :class:`~connectors.onec.errors.ODataPostingRefused` (permanent) when 1С refused,
        :class:`~connectors.onec.errors.ODataObjectLocked` (retriable) on a lock.
        """
        url = (
            self._document_url(entity_set, ref_key)
            + f"/Post?PostingModeOperational={'true' if operational else 'false'}"
        )
        with self._breaker.guard():
            response = await self._send(
                "odata_post",
                "POST",
                url,
                transport_error=lambda name: ODataTransportError(
                    None, message=f"{name}: no answer from 1С", entity_set=entity_set
                ),
            )
            if response.is_success:
                return
            body = _decode(response)
            err = posting_error_from_response(response.status_code, body, entity_set=entity_set)
            if isinstance(err, ODataServerError):
                err.retry_after = parse_retry_after(response.headers.get("retry-after"))
            self._log_failure("odata_post", response.status_code, err)
            raise err

    # --- writes through the standard OData interface (a base without our extension) -------

    async def get_document(self, entity_set: str, ref_key: UUID | str) -> dict[str, Any] | None:
        """The document as 1С holds it (``GET {odata}/Document_X(guid'…')``), or None when
        the base has no document with this Ref_Key: the look before a create."""
        url = self._document_url(entity_set, ref_key) + "?$format=json"
        with self._breaker.guard():
            response = await self._odata_call("odata_get", "GET", url, entity_set)
            if response.status_code == 404:
                return None
            self._odata_raise("odata_get", response, entity_set)
        return self._odata_record("odata_get", response, entity_set)

    async def create_document(self, entity_set: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Create a document: ``POST {odata}/Document_X?$format=json`` with its fields
        (``Ref_Key`` included: 1С gives the new object that reference); 1С answers 201 and
        the record it wrote (Number, Date, Posted, DataVersion filled in)."""
        if not _ENTITY_SET_RE.match(entity_set):
            raise ValueError(f"not a document entity set: {entity_set!r}")
        url = self._odata + quote(entity_set, safe="") + "?$format=json"
        payload = json.dumps(self._jsonable(record), ensure_ascii=False).encode()
        with self._breaker.guard():
            response = await self._odata_call(
                "odata_create",
                "POST",
                url,
                entity_set,
                content=payload,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            self._odata_raise("odata_create", response, entity_set)
        created = self._odata_record("odata_create", response, entity_set)
        log.info(
            "1c odata write",
            extra={
                "operation": "odata_create",
                "entity_set": entity_set,
                "ref_key": str(created.get("Ref_Key") or ""),
                "number": str(created.get("Number") or ""),
            },
        )
        return created

    async def update_document(
        self, entity_set: str, ref_key: UUID | str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change fields of a document: ``PATCH {odata}/Document_X(guid'…')?$format=json``;
        1С answers 200 and the record. A Ref_Key the base does not hold raises
        :class:`ODataDocumentMissing` (404)."""
        url = self._document_url(entity_set, ref_key) + "?$format=json"
        payload = json.dumps(self._jsonable(fields), ensure_ascii=False).encode()
        with self._breaker.guard():
            response = await self._odata_call(
                "odata_patch",
                "PATCH",
                url,
                entity_set,
                content=payload,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            if response.status_code == 404:
                said = posting_error_from_response(404, _decode(response), entity_set=entity_set)
                err = ODataDocumentMissing(
                    404,
                    said.odata_code,
                    f"no document {str(ref_key).lower()}: {str(said).partition(']')[2].strip()}",
                    entity_set=entity_set,
                )
                self._log_failure("odata_patch", 404, err)
                raise err
            self._odata_raise("odata_patch", response, entity_set)
        updated = self._odata_record("odata_patch", response, entity_set)
        log.info(
            "1c odata write",
            extra={
                "operation": "odata_patch",
                "entity_set": entity_set,
                "ref_key": str(ref_key).lower(),
                "fields": sorted(fields),
            },
        )
        return updated

    async def _odata_call(
        self, operation: str, method: str, url: str, entity_set: str, **kwargs: Any
    ) -> httpx.Response:
        return await self._send(
            operation,
            method,
            url,
            transport_error=lambda name: ODataTransportError(
                None, message=f"{name}: no answer from 1С", entity_set=entity_set
            ),
            **kwargs,
        )

    def _odata_raise(self, operation: str, response: httpx.Response, entity_set: str) -> None:
        """Raise 1С's refusal of an OData request (inside the breaker's guard)."""
        if response.is_success:
            return
        # /Post's classifier reads 1С's runtime text: a lock, a closed period, a refusal.
        err = posting_error_from_response(
            response.status_code, _decode(response), entity_set=entity_set
        )
        if isinstance(err, ODataServerError):
            err.retry_after = parse_retry_after(response.headers.get("retry-after"))
        self._log_failure(operation, response.status_code, err)
        raise err

    @staticmethod
    def _odata_record(operation: str, response: httpx.Response, entity_set: str) -> dict[str, Any]:
        body = _decode(response)
        if not isinstance(body, dict) or "Ref_Key" not in body:
            err = ODataServerError(
                response.status_code,
                "",
                f"{operation}: the answer is not a 1С record",
                entity_set=entity_set,
            )
            EGRESS_ERRORS.labels(TARGET, err.code).inc()
            raise err
        return {k: v for k, v in body.items() if k != "odata.metadata"}

    # --- plumbing ------------------------------------------------------------------------

    def _document_url(self, entity_set: str, ref_key: UUID | str) -> str:
        """``{odata}Document_X(guid'…')``, the address of one document."""
        if not _ENTITY_SET_RE.match(entity_set):
            raise ValueError(f"not a document entity set: {entity_set!r}")
        ref = _guid(ref_key, "ref_key")
        return self._odata + quote(f"{entity_set}(guid'{ref}')", safe="()'/")

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
        body = _decode(response)
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
        body = _decode(response)
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
            response.status_code, _decode(response), headers=response.headers, operation=operation
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


def _guid(value: UUID | str, name: str) -> str:
    text = str(value)
    if not _GUID_RE.match(text):
        raise ValueError(f"{name} is not a GUID: {text!r}")
    return text.lower()


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        # A proxy's or 1С's own HTML page: keep the text for the message.
        return response.text


__all__ = [
    "DocumentRef",
    "ODataDocumentMissing",
    "OneCClient",
    "Operation",
    "WriteResult",
    "circuit_verdict",
    "odata_url_of",
    "onec_datetime",
]
