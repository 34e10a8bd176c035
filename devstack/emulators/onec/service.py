"""The integration HTTP service of the 1С emulator (``/trade/hs/mm/``, http_service.openapi.yaml).

In-memory state only: the results of writes by Idempotency-Key, the keys in flight, and the
documents themselves, which land in the emulated base's OData entity sets (so the OData
reader sees them and ``/Post`` can post them later). Two rules of a real base are
switchable (``PUT /_emulator/rules``): a change-prohibition date (``closed_before``, writes
dated before it answer 409 ``period_closed``) and ``strict_references`` (a delivery status
for an order or shipment the base does not hold answers 404; off by default because the
embedded stack's orders arrive by push, not in the emulator).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from devstack.emulators.onec.contract import (
    KEY_PATTERN,
    AdvanceReport,
    CashDocument,
    DeliveryStatus,
    InstantOrder,
    Return,
    problems,
)
from devstack.emulators.onec.faults import CallLog, Fault, take_fault

SERVICE_PREFIX = "/trade/hs/mm"
CONTRACT_VERSION = "1.0.0"
EMPTY_DATE = "0001-01-01T00:00:00"

_DOCUMENT_SETS = {
    ("instant_order", "order"): "Document_ЗаказКлиента",
    ("instant_order", "shipment"): "Document_РеализацияТоваровУслуг",
    ("return", None): "Document_ВозвратТоваровОтКлиента",
    ("cash_document", "cash_receipt"): "Document_ПриходныйКассовыйОрдер",
    ("cash_document", "cash_expense"): "Document_РасходныйКассовыйОрдер",
    ("advance_report", None): "Document_АвансовыйОтчет",
}
# Where a delivery's order or shipment may live (УТ 11 and УТ 10.3 names).
_ORDER_SETS = ("Document_ЗаказКлиента", "Document_ЗаказПокупателя")
_SHIPMENT_SETS = ("Document_РеализацияТоваровУслуг",)


def error(
    status: int,
    code: str,
    message: str,
    *,
    details: dict | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An answer in the contract's error shape."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


class Refused(Exception):
    """A write 1С refuses after validation (404, 409): becomes an error answer."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class Stored:
    """A write that succeeded: what identifies its request, and its answer."""

    fingerprint: str
    result: dict[str, Any]


class HttpService:
    """The service's state: results by key, keys in flight, numbering, the base's rules."""

    def __init__(self, base: Any) -> None:
        self.base = base  # the emulated OData base (devstack.emulators.onec.app.ODataBase)
        self.results: dict[str, Stored] = {}
        self.in_flight: set[str] = set()
        self.numbers: Counter[str] = Counter()
        self.closed_before: datetime | None = None
        self.strict_references = False
        self.delivery_statuses: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        """Forget every write (the base's documents stay)."""
        self.results.clear()
        self.delivery_statuses.clear()

    async def idempotent(
        self, key: str, fingerprint: str, write: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]]:
        """(status, result): 201 after running ``write``, 200 for a repeat; raises Refused
        for a reused key or one still in flight."""
        stored = self.results.get(key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise Refused(
                    409,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                )
            return 200, self.current(stored.result)
        if key in self.in_flight:
            raise Refused(
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed",
            )
        self.in_flight.add(key)
        try:
            result = await write()
        finally:
            self.in_flight.discard(key)
        self.results[key] = Stored(fingerprint, result)
        return 201, result

    def current(self, result: dict[str, Any]) -> dict[str, Any]:
        """A stored result with its document's ``posted`` as the base holds it now."""
        doc = result["document"]
        record = self.base.sets.get(doc["type"], {}).get(doc["ref_key"])
        if record is None:
            return result
        return {**result, "document": {**doc, "posted": bool(record.get("Posted"))}}

    # --- the writes ------------------------------------------------------------------------

    def check_period(self, date: str) -> None:
        """Refuse a write dated before the change-prohibition date."""
        if self.closed_before is not None and datetime.fromisoformat(date) < self.closed_before:
            raise Refused(
                409,
                "period_closed",
                f"Дата запрета изменения: {self.closed_before.isoformat()}; "
                f"документ от {date} не может быть записан",
                {"closed_before": self.closed_before.isoformat()},
            )

    def find(self, ref: str, entity_sets: tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
        """(entity set, record) of a document the base holds, or None."""
        for name in entity_sets:
            record = self.base.sets.get(name, {}).get(ref.lower())
            if record is not None:
                return name, record
        return None

    def confirm_delivery(self, key: str, task_id: str, body: DeliveryStatus) -> dict[str, Any]:
        """Record a delivery status on its order or shipment."""
        ref = (body.order_id or body.shipment_id or "").lower()
        sets = _ORDER_SETS if body.order_id else _SHIPMENT_SETS
        found = self.find(ref, sets)
        if found is None and self.strict_references:
            kind = "order" if body.order_id else "shipment"
            raise Refused(404, "not_found", f"no {kind} {ref} in the base", {"ref_key": ref})
        if found is not None:
            entity_set, record = found
            self.check_period(date_of(record))
            # The extension keeps the status in its own attribute: a write, so a new DataVersion.
            record = self.base.write(
                entity_set,
                {**record, "мм_СтатусДоставки": body.status, "мм_ЗадачаДоставки": task_id},
            )
            document = _ref(entity_set, record)
        else:
            document = {
                "type": sets[0],
                "ref_key": ref,
                "number": "",
                "date": EMPTY_DATE,
                "posted": False,
            }
        self.delivery_statuses[task_id] = {"status": body.status, "document": document}
        return _result(
            key, "delivery_status", document, task_id=task_id, delivery_status=body.status
        )

    def create(
        self, key: str, operation: str, variant: str | None, body: BaseModel
    ) -> dict[str, Any]:
        """Create (and post when asked) a document from a validated body."""
        data = body.model_dump()
        entity_set = _DOCUMENT_SETS[(operation, variant)]
        self.check_period(data["date"])
        ref = (data.get("ref_key") or str(uuid.uuid4())).lower()
        existing = self.find(ref, tuple(dict.fromkeys(_DOCUMENT_SETS.values())))
        if existing is not None:
            raise Refused(
                409,
                "document_exists",
                f"a document with Ref_Key {ref} exists already",
                {"ref_key": ref, "type": existing[0]},
            )
        for field in ("shipment_id", "order_id"):
            wanted = data.get(field)
            sets = _ORDER_SETS if field == "order_id" else _SHIPMENT_SETS
            if (
                operation == "return"
                and wanted
                and self.strict_references
                and not self.find(wanted, sets)
            ):
                raise Refused(
                    404, "not_found", f"{field} {wanted} is not in the base", {field: wanted}
                )
        self.numbers[entity_set] += 1
        record = {
            "Ref_Key": ref,
            "DeletionMark": False,
            "Number": f"ММ00-{self.numbers[entity_set]:06d}",
            "Date": data["date"],
            "Posted": bool(data.get("post")),
            "Организация_Key": data.get("organization_id") or _EMPTY_REF,
            "Контрагент_Key": data.get("counterparty_id") or _EMPTY_REF,
            "СуммаДокумента": data.get("amount") or 0,
            "Комментарий": data.get("comment") or "",
            "мм_ИдентификаторИсточника": data["source_id"],
            "Товары": [
                {
                    "LineNumber": str(n),
                    "Номенклатура_Key": line["product_id"],
                    "Количество": line["quantity"],
                    "Цена": line["price"],
                    "Сумма": line.get("amount") or 0,
                }
                for n, line in enumerate(data.get("lines") or [], start=1)
            ],
        }
        self.base.sets.setdefault(entity_set, {})
        stored = self.base.write(entity_set, record)
        return _result(key, operation, _ref(entity_set, stored))


_EMPTY_REF = "00000000-0000-0000-0000-000000000000"


def date_of(record: dict[str, Any]) -> str:
    # Seeded records may carry anything; an unreadable date counts as the empty one.
    value = str(record.get("Date") or EMPTY_DATE)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return EMPTY_DATE
    return value


def _ref(entity_set: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": entity_set,
        "ref_key": str(record["Ref_Key"]).lower(),
        "number": str(record.get("Number") or ""),
        "date": str(record.get("Date") or EMPTY_DATE),
        "posted": bool(record.get("Posted")),
    }


def _result(key: str, operation: str, document: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "operation": operation,
        "document": document,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


_WRITES: dict[str, tuple[str, type[BaseModel]]] = {
    "/instant-orders": ("instant_order", InstantOrder),
    "/returns": ("return", Return),
    "/cash-documents": ("cash_document", CashDocument),
    "/advance-reports": ("advance_report", AdvanceReport),
}


def mount(
    app: FastAPI,
    service: HttpService,
    *,
    faults: list[Fault],
    calls: CallLog,
    authorized: Callable[[Request], bool],
) -> None:
    """Register the service's routes on ``app``."""

    async def serve(
        request: Request, operation: str, handle: Callable[[], Awaitable[Response]]
    ) -> Response:
        """Auth, injected faults and the call log around one request."""
        key = request.headers.get("idempotency-key")
        fault: Fault | None = None
        if not authorized(request):
            response: Response = error(
                401,
                "unauthorized",
                "Не пройдена аутентификация",
                headers={"WWW-Authenticate": 'Basic realm="1C:Enterprise"'},
            )
        else:
            fault = take_fault(faults, "hs", operation)
            latency_only = fault is not None and not fault.status and not fault.after_write
            if latency_only and request.method == "POST":
                # A slow write is slow while it holds its key: a repeat meanwhile sees it in flight.
                request.state.latency_s = fault.delay_s
            elif fault is not None and not fault.after_write:
                await asyncio.sleep(fault.delay_s)
            if fault is not None and fault.status and not fault.after_write:
                response = error(
                    fault.status,
                    fault.error_code(),
                    fault.message or "Ошибка (эмулятор)",
                    headers=fault.retry_after_header(),
                )
            else:
                response = await handle()
                if fault is not None and fault.after_write:
                    await asyncio.sleep(fault.delay_s)
        calls.record(
            "hs",
            operation,
            request.method,
            request.url.path,
            response.status_code,
            idempotency_key=key,
            replayed=response.headers.get("idempotent-replayed") == "true",
            fault=fault is not None,
            request_id=request.headers.get("x-request-id", ""),
            traceparent=request.headers.get("traceparent", ""),
        )
        return response

    async def write(
        request: Request,
        operation: str,
        model: type[BaseModel],
        run: Callable[[str, Any], dict],
        path_params: dict[str, str] | None = None,
    ) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            return error(
                400,
                "validation_failed",
                "the Idempotency-Key header is required",
                details={"errors": [{"field": "Idempotency-Key", "problem": "missing"}]},
            )
        if not _matches(KEY_PATTERN, key):
            return error(
                400,
                "validation_failed",
                "the Idempotency-Key header is not valid",
                details={
                    "errors": [
                        {"field": "Idempotency-Key", "problem": "1-200 of A-Z a-z 0-9 . _ : ~ -"}
                    ]
                },
            )
        raw = await request.body()
        try:
            decoded = json.loads(raw, parse_constant=_no_constants)
            body = model.model_validate(decoded)
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, ValidationError):
                return error(
                    400,
                    "validation_failed",
                    "the request body does not match the contract",
                    details={"errors": problems(exc)},
                )
            return error(400, "validation_failed", "the request body is not JSON")
        fingerprint = hashlib.sha256(
            json.dumps([request.url.path, decoded], sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()

        async def do() -> dict[str, Any]:
            await asyncio.sleep(getattr(request.state, "latency_s", 0.0))
            return run(key, body)

        try:
            status, result = await service.idempotent(key, fingerprint, do)
        except Refused as exc:
            headers = {"Retry-After": "1"} if exc.code == "idempotency_in_progress" else None
            return error(exc.status, exc.code, exc.message, details=exc.details, headers=headers)
        headers = (
            {"Location": f"{SERVICE_PREFIX}/operations/{key}"}
            if status == 201
            else {"Idempotent-Replayed": "true"}
        )
        return JSONResponse(result, status_code=status, headers=headers)

    @app.get(SERVICE_PREFIX + "/ping")
    async def ping(request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse({"status": "ok", "version": CONTRACT_VERSION})

        return await serve(request, "ping", handle)

    @app.post(SERVICE_PREFIX + "/delivery-tasks/{task_id}/status")
    async def delivery_status(task_id: str, request: Request) -> Response:
        async def handle() -> Response:
            if not _matches(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$", task_id):
                return error(
                    400,
                    "validation_failed",
                    "task_id is not a GUID",
                    details={"errors": [{"field": "task_id", "problem": "not a GUID"}]},
                )
            return await write(
                request,
                "delivery_status",
                DeliveryStatus,
                lambda key, body: service.confirm_delivery(key, task_id.lower(), body),
            )

        return await serve(request, "delivery_status", handle)

    for path, (operation, model) in _WRITES.items():
        _mount_create(app, path, operation, model, service, serve, write)

    @app.get(SERVICE_PREFIX + "/operations/{idempotency_key}")
    async def get_operation(idempotency_key: str, request: Request) -> Response:
        async def handle() -> Response:
            if not _matches(KEY_PATTERN, idempotency_key):
                return error(
                    400,
                    "validation_failed",
                    "not a valid Idempotency-Key",
                    details={"errors": [{"field": "idempotency_key", "problem": "not valid"}]},
                )
            stored = service.results.get(idempotency_key)
            if stored is None:
                return error(404, "not_found", "no write with this Idempotency-Key succeeded")
            return JSONResponse(service.current(stored.result))

        return await serve(request, "operation", handle)


def _mount_create(
    app: FastAPI,
    path: str,
    operation: str,
    model: type[BaseModel],
    service: HttpService,
    serve: Callable[..., Awaitable[Response]],
    write: Callable[..., Awaitable[Response]],
) -> None:
    def run(key: str, body: Any) -> dict[str, Any]:
        variant = getattr(body, "document_type", None) or getattr(body, "kind", None)
        return service.create(key, operation, variant, body)

    async def endpoint(request: Request) -> Response:
        async def handle() -> Response:
            return await write(request, operation, model, run)

        return await serve(request, operation, handle)

    app.add_api_route(SERVICE_PREFIX + path, endpoint, methods=["POST"], name=operation)


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
