"""An in-memory emulator of the Bitrix24 REST API, as far as products go.

Serves ``{webhook_path}{method}.json`` like a portal with an incoming webhook: JSON,
form-encoded (PHP-style ``fields[NAME]=…``) and GET query parameters; the real envelope
(``result``, ``time``, ``total``, ``next``) and real error shapes and statuses; the
per-portal leaky bucket (HTTP 503 ``QUERY_LIMIT_EXCEEDED`` before executing anything);
``catalog.product.*`` (camelCase) and legacy ``crm.product.*`` (UPPER_CASE, string values,
errors with an EMPTY code) over one product store; and ``batch`` (always HTTP 200, PHP
array encoding: maps keyed ``0..n-1`` come out as JSON lists, empty maps as ``[]``).

Admin endpoints (no auth: a loopback test tool) inject faults and inspect what arrived:
``POST/GET/DELETE /_emulator/faults``, ``GET /_emulator/calls``, ``GET /_emulator/products``,
``POST /_emulator/reset``, ``GET/PUT /_emulator/limits``; plus ``GET /health``.

All state lives in the app returned by :func:`create_app`, so tests can run several.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from connectors.bitrix24.ratelimit import LeakyBucket

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_BATCH = 50
# Bitrix24 accounts method execution time in 10-minute windows (operating / operating_reset_at).
_OPERATING_WINDOW_S = 600

_INT_FIELDS = frozenset({
    "id", "iblockId", "iblockSectionId", "sort", "measure", "vatId", "createdBy",
    "modifiedBy", "type",
})
# Legacy CRM names whose catalog counterpart is not the plain camelCase of the name.
_CRM_SPECIAL = {
    "CATALOG_ID": "iblockId",
    "SECTION_ID": "iblockSectionId",
    "DESCRIPTION": "detailText",
    "DESCRIPTION_TYPE": "detailTextType",
}
_CAMEL_SPECIAL = {v: k for k, v in _CRM_SPECIAL.items()}
_CRM_DEFAULT_SELECT = (
    "ID", "CATALOG_ID", "NAME", "CODE", "ACTIVE", "SORT", "XML_ID", "DESCRIPTION",
    "DESCRIPTION_TYPE", "SECTION_ID", "PRICE", "CURRENCY_ID", "VAT_ID", "VAT_INCLUDED",
    "MEASURE", "DATE_CREATE", "TIMESTAMP_X", "CREATED_BY", "MODIFIED_BY",
)
_FILTER_OP = re.compile(r"^(!=%|!%=|!%|=%|%=|>=|<=|!=|!|>|<|%|=)?(.+)$")
_RESULT_REF = re.compile(r"\$result\[([^\]]*)\]((?:\[[^\]]*\])*)")


class _ApiError(Exception):
    """A REST error answer: HTTP ``status`` with ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: Any, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


def _legacy(description: str) -> _ApiError:
    # Legacy crm.* methods answer HTTP 400 with an empty code and only a text.
    return _ApiError(400, "", description)


def _missing_param(name: str) -> _ApiError:
    return _ApiError(400, 100, f"Could not find value for parameter {{{name}}}")


@dataclass
class Fault:
    """An injected failure: the next ``times`` matching calls answer ``status``/``error``.

    A status below 400 makes a "slow" fault instead: the call executes, then its answer is
    held for ``delay_s`` (the client times out although the write happened).
    """

    method: str = "*"
    status: int = 500
    error: str = "INTERNAL_SERVER_ERROR"
    description: str = "Internal server error"
    times: int = 1
    delay_s: float = 0.0
    xml_id: str | None = None
    reset_in_s: float = 1.0

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        """Whether a call of ``method`` (lower case) with ``params`` triggers this fault."""
        if self.method != "*" and self.method.lower() != method:
            return False
        return self.xml_id is None or self.xml_id in _xml_ids_of(params)


class FaultSpec(BaseModel):
    """Body of ``POST /_emulator/faults``."""

    method: str = "*"
    status: int = Field(500, ge=100, le=599)
    error: str = "INTERNAL_SERVER_ERROR"
    description: str = "Internal server error"
    times: int = Field(1, ge=1)
    delay_s: float = Field(0.0, ge=0)
    xml_id: str | None = None
    # Only for OPERATION_TIME_LIMIT: seconds until the time.operating_reset_at it reports.
    reset_in_s: float = Field(1.0, ge=0)


class LimitsSpec(BaseModel):
    """Body of ``PUT /_emulator/limits``."""

    rate_per_s: float = Field(gt=0)
    burst: int = Field(ge=1)


@dataclass
class _Outcome:
    status: int
    result: Any = None
    error: _ApiError | None = None
    total: int | None = None
    next: int | None = None
    time: dict[str, Any] = field(default_factory=dict)


class _ProductStore:
    """Products in canonical (catalog camelCase) form, shared by catalog.* and crm.*."""

    def __init__(self, default_iblock_id: int) -> None:
        self.default_iblock_id = default_iblock_id
        self.products: dict[int, dict[str, Any]] = {}
        self._next_id = 1

    def add(self, fields: dict[str, Any]) -> dict[str, Any]:
        now = _iso(time.time())
        product_id = self._next_id
        self._next_id += 1
        product: dict[str, Any] = {
            "id": product_id, "iblockId": self.default_iblock_id, "name": "", "active": "Y",
            "available": "Y", "code": None, "xmlId": None, "sort": 500, "type": 1,
            "iblockSectionId": None, "detailText": None, "detailTextType": "text",
            "createdBy": 1, "modifiedBy": 1, "dateCreate": now, "timestampX": now,
        }
        product.update({k: v for k, v in _coerce(fields).items() if k != "id"})
        # Like the portal: an element saved without an external code gets its id as one.
        if product.get("xmlId") in (None, ""):
            product["xmlId"] = str(product_id)
        self.products[product_id] = product
        return product

    def update(self, product_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        product = self.products[product_id]
        product.update({k: v for k, v in _coerce(fields).items() if k != "id"})
        product["timestampX"] = _iso(time.time())
        return product

    def find(self, flt: dict[str, Any], order: dict[str, Any] | None) -> list[dict[str, Any]]:
        rows = [p for p in self.products.values() if _matches(p, flt)]
        keys = list((order or {"id": "ASC"}).items())
        # Stable sorts applied last key first give a multi-key order with mixed directions.
        for name, direction in reversed(keys):
            rows.sort(key=lambda p, n=name: _sort_key(p.get(n)),
                      reverse=str(direction).upper() == "DESC")
        return rows


class _Emulator:
    """The state of one emulated portal and the execution of REST calls against it."""

    def __init__(self, webhook_path: str, rate_per_s: float, burst: int,
                 catalog_iblock_id: int) -> None:
        self.webhook_path = "/" + webhook_path.strip("/") + "/"
        self.catalog_iblock_id = catalog_iblock_id
        self.bucket = LeakyBucket(rate_per_s, burst)
        self.store = _ProductStore(catalog_iblock_id)
        self.calls: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._operating: dict[str, list[float]] = {}
        self._methods: dict[str, Callable[[dict[str, Any]], tuple[Any, Any, Any]]] = {
            "catalog.product.add": self._catalog_add,
            "catalog.product.update": self._catalog_update,
            "catalog.product.get": self._catalog_get,
            "catalog.product.list": self._catalog_list,
            "catalog.product.delete": self._catalog_delete,
            "crm.product.add": self._crm_add,
            "crm.product.update": self._crm_update,
            "crm.product.get": self._crm_get,
            "crm.product.list": self._crm_list,
            "crm.product.delete": self._crm_delete,
        }

    def reset(self) -> None:
        self.store = _ProductStore(self.catalog_iblock_id)
        self.calls.clear()
        self.faults.clear()
        self._operating.clear()
        self.bucket.reset()

    # ---- request handling -------------------------------------------------------------

    def record(self, method: str, params: Any, status: int, *, in_batch: bool = False) -> None:
        self.calls.append({"method": method, "params": params, "status": status,
                           "ts": time.time(), "in_batch": in_batch})

    async def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one top-level REST call; (HTTP status, JSON body)."""
        start = time.time()
        if self.bucket.try_acquire() > 0:
            self.record(method, params, 503)
            return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        if method == "batch":
            outcome = await self._run(method, params, start, batch=True)
        else:
            outcome = await self._run(method, params, start)
        self.record(method, params, outcome.status)
        if outcome.error is not None:
            body = outcome.error.body()
            if outcome.time:
                body["time"] = outcome.time
            return outcome.status, body
        body = {"result": outcome.result}
        if outcome.total is not None:
            body["total"] = outcome.total
        if outcome.next is not None:
            body["next"] = outcome.next
        body["time"] = outcome.time
        return 200, body

    async def _run(self, method: str, params: dict[str, Any], start: float, *,
                   batch: bool = False) -> _Outcome:
        handler = self._methods.get(method)
        if handler is None and not batch:
            return _Outcome(404, error=_ApiError(404, "ERROR_METHOD_NOT_FOUND",
                                                 "Method not found!"))
        fault = self._take_fault(method, params)
        if fault is not None and fault.status >= 400:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            out = _Outcome(fault.status, error=_ApiError(fault.status, fault.error,
                                                         fault.description))
            if fault.error.upper() == "OPERATION_TIME_LIMIT":
                out.time = self._time(method, start, time.time(), account=False)
                out.time["operating_reset_at"] = int(time.time() + fault.reset_in_s)
            return out
        try:
            if batch:
                result, total, nxt = await self._batch(params), None, None
            else:
                result, total, nxt = handler(params)
            out = _Outcome(200, result=result, total=total, next=nxt)
        except _ApiError as exc:
            out = _Outcome(exc.status, error=exc)
        except Exception:
            # Answer like the portal does rather than with a bare ASGI 500 page; the
            # traceback goes to the log and the call log shows the 500.
            logger.exception("emulator failed executing %s", method)
            out = _Outcome(500, error=_ApiError(500, "INTERNAL_SERVER_ERROR",
                                                "Internal server error"))
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if out.error is None:
            out.time = self._time(method, start, time.time())
        return out

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, params):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _time(self, method: str, start: float, finish: float, *,
              account: bool = True) -> dict[str, Any]:
        window = self._operating.setdefault(method, [start, 0.0])
        if start >= window[0] + _OPERATING_WINDOW_S:
            window[:] = [start, 0.0]
        if account:
            window[1] += finish - start
        return {
            "start": start, "finish": finish, "duration": finish - start,
            "processing": finish - start, "date_start": _iso(start), "date_finish": _iso(finish),
            "operating_reset_at": int(window[0] + _OPERATING_WINDOW_S), "operating": window[1],
        }

    async def _batch(self, params: dict[str, Any]) -> dict[str, Any]:
        cmd = params.get("cmd") or {}
        if isinstance(cmd, list):
            cmd = {str(i): c for i, c in enumerate(cmd)}
        if not isinstance(cmd, dict):
            raise _ApiError(400, "INVALID_ARG_VALUE", "cmd must be an object of commands")
        if len(cmd) > MAX_BATCH:
            raise _ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(params.get("halt", 0)).strip().lower() in ("1", "true", "y")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        for key, command in cmd.items():
            key = str(key)
            method, _, query = str(command).partition("?")
            method = method.strip().lower()
            sub_params = _substitute(_php_parse(parse_qsl(query, keep_blank_values=True)),
                                     results)
            start = time.time()
            if method == "batch":
                out = _Outcome(405, error=_ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED",
                                                    "Method is not allowed for batch usage"))
            else:
                out = await self._run(method, sub_params, start)
            self.record(method, sub_params, out.status, in_batch=True)
            if out.error is not None:
                errors[key] = out.error.body()
                if halt:
                    break
                continue
            results[key] = out.result
            if out.total is not None:
                totals[key] = out.total
            if out.next is not None:
                nexts[key] = out.next
            times[key] = out.time
        return {
            "result": _php_array(results),
            "result_error": _php_array(errors),
            "result_total": _php_array(totals),
            "result_next": _php_array(nexts),
            "result_time": _php_array(times),
        }

    # ---- catalog.product.* (camelCase, numeric ids) -------------------------------------

    def _product_or_error(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("id") in (None, ""):
            raise _missing_param("id")
        product = self.store.products.get(_as_int(params.get("id")) or 0)
        if product is None:
            raise _ApiError(400, "", "product does not exist.")
        return product

    def _catalog_add(self, params: dict[str, Any]):
        fields = params.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise _missing_param("fields")
        missing = [f for f in ("iblockId", "name") if fields.get(f) in (None, "")]
        if missing:
            raise _ApiError(400, 0, f"Required fields: {', '.join(missing)}")
        return {"element": dict(self.store.add(fields))}, None, None

    def _catalog_update(self, params: dict[str, Any]):
        product = self._product_or_error(params)
        fields = params.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise _missing_param("fields")
        return {"element": dict(self.store.update(product["id"], fields))}, None, None

    def _catalog_get(self, params: dict[str, Any]):
        return {"product": dict(self._product_or_error(params))}, None, None

    def _catalog_delete(self, params: dict[str, Any]):
        product = self._product_or_error(params)
        del self.store.products[product["id"]]
        return True, None, None

    def _catalog_list(self, params: dict[str, Any]):
        if "select" not in params:
            raise _missing_param("select")
        if "filter" not in params:
            raise _missing_param("filter")
        select = _as_list(params["select"])
        missing = [f for f in ("id", "iblockId") if f not in select]
        if missing:
            raise _ApiError(400, 0, f"Required select fields: {', '.join(missing)}")
        flt = params["filter"]
        if not isinstance(flt, dict):
            raise _ApiError(400, 0, "Incorrect filter format")
        if not any(_split_op(k)[1] == "iblockId" for k in flt):
            raise _ApiError(400, 0, "Required filter fields: iblockId")
        rows = self.store.find(flt, _order(params.get("order")))
        page, total, nxt = _page(rows, params.get("start"))
        everything = "*" in select
        products = [
            {k: v for k, v in p.items() if everything or k in select} for p in page
        ]
        return {"products": products}, total, nxt

    # ---- crm.product.* (legacy: UPPER_CASE, string values, empty error codes) ----------

    def _crm_id(self, params: dict[str, Any]) -> int:
        product_id = _as_int(params.get("id", params.get("ID")))
        if not product_id or product_id <= 0:
            raise _legacy("ID is not defined or invalid.")
        if product_id not in self.store.products:
            raise _legacy("Not found")
        return product_id

    def _crm_fields(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields", params.get("FIELDS"))
        if not isinstance(fields, dict) or not fields:
            raise _legacy("The parameter 'fields' must be array.")
        return {_crm_to_camel(k): v for k, v in fields.items()}

    def _crm_add(self, params: dict[str, Any]):
        fields = self._crm_fields(params)
        if fields.get("name") in (None, ""):
            raise _legacy("Name is not specified.")
        return self.store.add(fields)["id"], None, None

    def _crm_update(self, params: dict[str, Any]):
        product_id = self._crm_id(params)
        self.store.update(product_id, self._crm_fields(params))
        return True, None, None

    def _crm_get(self, params: dict[str, Any]):
        return _crm_view(self.store.products[self._crm_id(params)], None), None, None

    def _crm_delete(self, params: dict[str, Any]):
        del self.store.products[self._crm_id(params)]
        return True, None, None

    def _crm_list(self, params: dict[str, Any]):
        raw_filter = params.get("filter") or {}
        if not isinstance(raw_filter, dict):
            raise _legacy("Parameter 'filter' must be array.")
        flt = {}
        for key, value in raw_filter.items():
            op, name = _split_op(key)
            flt[op + _crm_to_camel(name)] = value
        # As documented: without CATALOG_ID the default product catalog is read.
        if not any(_split_op(k)[1] == "iblockId" for k in flt):
            flt["iblockId"] = self.catalog_iblock_id
        order = {_crm_to_camel(k): v for k, v in (_order(params.get("order")) or {}).items()}
        rows = self.store.find(flt, order or None)
        page, total, nxt = _page(rows, params.get("start"))
        select = [str(s).upper() for s in _as_list(params.get("select") or [])]
        return [_crm_view(p, select) for p in page], total, nxt


# ---- the FastAPI app --------------------------------------------------------------------


def create_app(
    *,
    webhook_path: str = "/rest/1/devwebhookcode/",
    rate_per_s: float = 2.0,
    burst: int = 50,
    catalog_iblock_id: int = 14,
) -> FastAPI:
    """A FastAPI app emulating one Bitrix24 portal reached at ``{webhook_path}{method}.json``.

    ``rate_per_s``/``burst`` size the portal's leaky bucket; ``catalog_iblock_id`` is the
    product catalog that ``crm.product.*`` reads and writes when no CATALOG_ID is given.
    The emulator state is ``app.state.emulator``.
    """
    emu = _Emulator(webhook_path, rate_per_s, burst, catalog_iblock_id)
    app = FastAPI(title="Bitrix24 REST emulator", docs_url=None, redoc_url=None)
    app.state.emulator = emu

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/_emulator/faults")
    async def add_fault(spec: FaultSpec) -> dict[str, Any]:
        emu.faults.append(Fault(**spec.model_dump()))
        return {"faults": [asdict(f) for f in emu.faults]}

    @app.get("/_emulator/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": [asdict(f) for f in emu.faults]}

    @app.delete("/_emulator/faults")
    async def clear_faults() -> dict[str, Any]:
        cleared = len(emu.faults)
        emu.faults.clear()
        return {"cleared": cleared}

    @app.get("/_emulator/calls")
    async def list_calls(method: str | None = None) -> list[dict[str, Any]]:
        if method is None:
            return list(emu.calls)
        return [c for c in emu.calls if c["method"] == method.lower()]

    @app.get("/_emulator/products")
    async def list_products() -> list[dict[str, Any]]:
        return [dict(p) for p in emu.store.products.values()]

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, bool]:
        emu.reset()
        return {"ok": True}

    @app.get("/_emulator/limits")
    async def get_limits() -> dict[str, Any]:
        return {"rate_per_s": emu.bucket.rate_per_s, "burst": emu.bucket.burst}

    @app.put("/_emulator/limits")
    async def set_limits(spec: LimitsSpec) -> dict[str, Any]:
        emu.bucket = LeakyBucket(spec.rate_per_s, spec.burst)
        return {"rate_per_s": spec.rate_per_s, "burst": spec.burst}

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def rest(request: Request, path: str) -> JSONResponse:
        full = "/" + path
        if not full.startswith(emu.webhook_path) or "/" in full[len(emu.webhook_path):]:
            emu.record(_method_of(full.rsplit("/", 1)[-1]), None, 401)
            return JSONResponse(
                {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"},
                status_code=401,
            )
        method = _method_of(full[len(emu.webhook_path):])
        try:
            params = await _read_params(request)
        except _ApiError as exc:
            emu.record(method, None, exc.status)
            return JSONResponse(exc.body(), status_code=exc.status)
        status, body = await emu.handle(method, params)
        return JSONResponse(body, status_code=status)

    return app


# ---- helpers ----------------------------------------------------------------------------


def _method_of(segment: str) -> str:
    for suffix in (".json", ".xml"):
        if segment.lower().endswith(suffix):
            segment = segment[: -len(suffix)]
    # Method names are case-insensitive on a portal.
    return segment.lower()


async def _read_params(request: Request) -> dict[str, Any]:
    params = _php_parse(request.query_params.multi_items())
    if request.method != "POST":
        return params
    raw = await request.body()
    if not raw.strip():
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type or raw.lstrip()[:1] == b"{":
        try:
            data = json.loads(raw)
        except ValueError:
            raise _ApiError(400, "INVALID_REQUEST", "Request body is not valid JSON") from None
        if isinstance(data, dict):
            params.update(data)
        return params
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _ApiError(400, "INVALID_REQUEST", "Request body is not UTF-8") from None
    params.update(_php_parse(parse_qsl(text, keep_blank_values=True)))
    return params


def _php_parse(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """PHP-style nesting: ``fields[NAME]=x&select[]=ID`` → {"fields": {...}, "select": [...]}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        if not head or (rest and not rest.endswith("]")):
            root[key] = value
            continue
        parts = [head] + (re.findall(r"\[([^\]]*)\]", "[" + rest) if rest else [])
        node = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(sum(1 for k in node if str(k).isdigit()))
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return {k: _listify(v) for k, v in root.items()}


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and list(value) == [str(i) for i in range(len(value))]:
            return list(value.values())
    return value


def _php_array(mapping: dict[str, Any]) -> dict[str, Any] | list[Any]:
    # PHP's json_encode: an array keyed 0..n-1 is a JSON list, an empty one is [] — which is
    # why real batch answers show result_error as a list that cannot be matched to commands.
    if not mapping:
        return []
    keys = list(mapping)
    if keys == [str(i) for i in range(len(keys))]:
        return [mapping[k] for k in keys]
    return mapping


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace ``$result[cmd][field]`` references with earlier commands' results."""
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if not isinstance(value, str) or "$result[" not in value:
        return value
    whole = _RESULT_REF.fullmatch(value)
    if whole:
        return _resolve(whole, results)
    return _RESULT_REF.sub(lambda m: _scalar_text(_resolve(m, results)), value)


def _resolve(match: re.Match[str], results: dict[str, Any]) -> Any:
    node: Any = results.get(match.group(1))
    for part in re.findall(r"\[([^\]]*)\]", match.group(2)):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _scalar_text(value: Any) -> str:
    return "" if value is None else str(value)


def _xml_ids_of(params: dict[str, Any]) -> set[str]:
    found = set()
    for section in ("fields", "filter", "FIELDS", "FILTER"):
        block = params.get(section)
        if isinstance(block, dict):
            for key in ("xmlId", "XML_ID", "=xmlId", "=XML_ID"):
                if block.get(key) is not None:
                    found.add(str(block[key]))
    return found


def _coerce(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for key in _INT_FIELDS & out.keys():
        as_int = _as_int(out[key])
        if as_int is not None:
            out[key] = as_int
    return out


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    return [value]


def _order(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value else None


def _page(rows: list[Any], start: Any) -> tuple[list[Any], int | None, int | None]:
    offset = _as_int(start) or 0
    if offset == -1:
        # start=-1 skips counting, as the portal does for fast bulk reads.
        return rows[:PAGE_SIZE], None, None
    offset = max(offset, 0)
    page = rows[offset: offset + PAGE_SIZE]
    nxt = offset + PAGE_SIZE if offset + PAGE_SIZE < len(rows) else None
    return page, len(rows), nxt


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _sort_key(value: Any) -> tuple[int, Any]:
    number = _number(value)
    if number is not None:
        return (0, number)
    if value is None:
        return (2, "")
    return (1, str(value).lower())


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict) and "value" in expected:
        expected = expected["value"]
    if actual is None or expected is None:
        return (actual or "") == (expected or "")
    if isinstance(actual, str) and isinstance(expected, str):
        return actual == expected
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return a == b
    return str(actual) == str(expected)


def _compare(actual: Any, expected: Any, op: str) -> bool:
    if isinstance(expected, dict) and "value" in expected:
        expected = expected["value"]
    if actual is None:
        return False
    a, b = _number(actual), _number(expected)
    left, right = (a, b) if a is not None and b is not None else (str(actual), str(expected))
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]


def _like(actual: Any, pattern: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("%")) + "$"
    return re.match(regex, "" if actual is None else str(actual), re.IGNORECASE | re.S) is not None


def _matches(product: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, expected in flt.items():
        op, name = _split_op(key)
        op = op or "="
        actual = product.get(name)
        values = expected if isinstance(expected, list) else [expected]
        if op == "=":
            ok = any(_equal(actual, v) for v in values)
        elif op in ("!", "!="):
            ok = not any(_equal(actual, v) for v in values)
        elif op in (">", ">=", "<", "<="):
            ok = _compare(actual, expected, op)
        elif op == "%":
            ok = str(expected).lower() in str(actual or "").lower()
        elif op == "!%":
            ok = str(expected).lower() not in str(actual or "").lower()
        elif op in ("=%", "%="):
            ok = _like(actual, str(expected))
        else:  # "!=%", "!%="
            ok = not _like(actual, str(expected))
        if not ok:
            return False
    return True


def _split_op(key: Any) -> tuple[str, str]:
    """("", "xmlId") for "xmlId", (">=", "id") for ">=id"."""
    match = _FILTER_OP.match(str(key))
    if match is None:
        return "", str(key)
    return match.group(1) or "", match.group(2)


def _crm_to_camel(name: str) -> str:
    name = str(name).upper()
    if name in _CRM_SPECIAL:
        return _CRM_SPECIAL[name]
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _camel_to_crm(name: str) -> str:
    if name in _CAMEL_SPECIAL:
        return _CAMEL_SPECIAL[name]
    match = re.fullmatch(r"property(\d+)", name)
    if match:
        return f"PROPERTY_{match.group(1)}"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _crm_view(product: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    # Legacy CRM answers ids and numbers as strings.
    everything = {_camel_to_crm(k): _crm_value(v) for k, v in product.items()}
    wanted = list(_CRM_DEFAULT_SELECT) if not select or "*" in select else select
    if select and "*" in select:
        wanted = list(dict.fromkeys(wanted + list(everything)))
    return {k: everything.get(k) for k in wanted if k in everything or k in _CRM_DEFAULT_SELECT}


def _crm_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


__all__ = ["Fault", "FaultSpec", "LimitsSpec", "PAGE_SIZE", "MAX_BATCH", "create_app"]
