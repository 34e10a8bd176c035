"""Emulator of a 1С:УТ base for the embedded stack and tests: the standard OData interface
(JSON, basic auth, ``$filter $orderby $top $skip``; documents created with ``POST``,
changed with ``PATCH``, and their ``/Post`` and ``/Unpost`` actions — 1С's answers and
``odata.error`` bodies, a closed period and a duplicate Ref_Key included) and the integration HTTP service our egress calls (service.py, the
contract in connectors/onec/http_service.openapi.yaml).

The Balance virtual table of an accumulation register
(``GET AccumulationRegister_ТоварыНаСкладах/Balance(Period=…, Condition=…, Dimensions=…)``)
is computed from the movements written to the register's set (RecordSets keyed by
Recorder, or single movements; Receipt adds, Expense subtracts) or from balance rows written
there: ``<Dimension>_Key`` and ``<Resource>Balance`` fields, zero rows left out.

Admin endpoints change the base as a user would: ``PUT /_emulator/odata/{EntitySet}``
writes records (each write gets a new DataVersion, as in 1С), ``DELETE`` removes one (it
vanishes without a tombstone, as in 1С), ``PUT /_emulator/rules`` sets the
change-prohibition date. ``/_emulator/faults`` makes requests slow or fail
(faults.py), ``/_emulator/storm`` hits a share of all requests with a mix of
faults for a while, ``/_emulator/calls`` lists the requests served.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.onec.objects import OBJECTS, lookup
from connectors.onec.odata.query import parse_virtual_table
from connectors.onec.validation import RecordRejected, identity
from devstack.emulators.bitrix24.faults import Storm, StormMiddleware, StormSpec
from devstack.emulators.onec import service as http_service
from devstack.emulators.onec.faults import CallLog, Fault, FaultSpec, onec_storm_answer, take_fault
from devstack.emulators.onec.query import ODataQueryError, apply_query, balance_rows

ODATA_PREFIX = "/trade/odata/standard.odata/"
DEFAULT_ENTITY_SETS = tuple(obj.odata_name for obj in OBJECTS)
# Document_X(guid'…'): the address of one document in the standard interface.
_DOCUMENT_ADDRESS = re.compile(r"^(?P<set>Document_\w+)\(guid'(?P<ref>[0-9a-fA-F-]{36})'\)$")


class RulesSpec(BaseModel):
    """Body of ``PUT /_emulator/rules``: the base's rules the service and ``/Post`` obey."""

    closed_before: datetime | None = None
    strict_references: bool = False


def _odata_error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}},
        status_code=status,
        headers=headers,
    )


class ODataBase:
    """The emulated base's entity sets: record key -> record, DataVersion on every write."""

    def __init__(self, entity_sets: Iterable[str]) -> None:
        self.sets: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in entity_sets}
        self._writes = 0x100  # above the small versions the captured fixtures carry

    def key(self, entity_set: str, record: dict[str, Any]) -> str:
        """The record's identity: Ref_Key, a register record's period and dimensions, or
        for an accumulation register's movements their recorder (a RecordSet replaces the
        recorder's movements, as 1С writes them) or recorder and line (a single movement)."""
        obj = lookup(entity_set)
        if obj is None:
            return str(record["Ref_Key"]).lower()
        if obj.accumulation and entity_set == obj.odata_name:
            if isinstance(record.get("RecordSet"), list):
                return "recorder:" + str(record["Recorder"]).lower()
            if "RecordType" in record:
                return f"movement:{str(record['Recorder']).lower()}|{record['LineNumber']}"
        return identity(obj, record)[0]

    def versioned(self, entity_set: str) -> bool:
        obj = lookup(entity_set)
        return obj is None or obj.kind != "register"  # 1С registers carry no DataVersion

    def load(self, entity_set: str, record: dict[str, Any]) -> None:
        """Store a record as it is (seed data keeps its DataVersion)."""
        self.sets.setdefault(entity_set, {})[self.key(entity_set, record)] = record

    def write(self, entity_set: str, record: dict[str, Any]) -> dict[str, Any]:
        """Store a record as a 1С user's write: a new DataVersion each time."""
        stored = dict(record)
        if self.versioned(entity_set):
            old = self.sets[entity_set].get(self.key(entity_set, record), {}).get("DataVersion")
            while stored.get("DataVersion") in (None, old):
                self._writes += 1
                # 1С's DataVersion is 8 opaque bytes, base64: mimic its look.
                stored["DataVersion"] = base64.b64encode(
                    self._writes.to_bytes(4, "big") + bytes(4)
                ).decode()
        self.sets[entity_set][self.key(entity_set, stored)] = stored
        return stored


def metadata_document(entity_sets: Iterable[str]) -> str:
    """``$metadata`` of the published sets: 1С answers EDMX with the ``StandardODATA``
    namespace and one container, ``InfoBase`` (property lists left out: nothing here reads
    them)."""
    sets = "".join(
        f'<EntitySet Name="{escape(name)}" EntityType="StandardODATA.{escape(name)}"/>'
        for name in sorted(entity_sets)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">'
        '<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/'
        'metadata" m:DataServiceVersion="3.0"><Schema xmlns="http://schemas.microsoft.com/'
        'ado/2009/11/edm" Namespace="StandardODATA"><EntityContainer Name="InfoBase" '
        f'm:IsDefaultEntityContainer="true">{sets}</EntityContainer></Schema>'
        "</edmx:DataServices></edmx:Edmx>"
    )


def create_app(
    seed_file: Path | None = None,
    *,
    entity_sets: Iterable[str] = DEFAULT_ENTITY_SETS,
    username: str | None = None,
    password: str | None = None,
    service_username: str | None = None,
    service_password: str | None = None,
) -> FastAPI:
    """An in-memory 1С base.

    ``seed_file`` is an OData ``{"odata.metadata": "…#EntitySet", "value": [...]}`` document
    (entity set from its metadata, Catalog_Номенклатура when it names none). Infobase users:
    ``username``/``password`` (the OData reader) and ``service_username``/``service_password``
    (the integration user of the HTTP service); with any configured, every interface
    requires basic auth of one of them, as a base authenticates any of its users. The HTTP
    service's state is ``app.state.service``, the call log ``app.state.calls``.
    """
    app = FastAPI(title="1С emulator")
    base = ODataBase(entity_sets)
    if seed_file and seed_file.exists():
        doc = json.loads(seed_file.read_text("utf-8-sig"))
        target = str(doc.get("odata.metadata", "")).rpartition("#")[2] or "Catalog_Номенклатура"
        for rec in doc["value"]:
            base.load(target, rec)
    faults: list[Fault] = []
    calls = CallLog()
    service = http_service.HttpService(base)
    documents: dict[str, dict] = {}
    app.state.base = base
    app.state.service = service
    app.state.calls = calls
    app.state.faults = faults
    app.state.storm = None
    app.add_middleware(
        StormMiddleware, prefix="/trade/", answer=onec_storm_answer, holder=app.state
    )
    users = {
        name: secret or ""
        for name, secret in ((username, password), (service_username, service_password))
        if name is not None
    }

    def authorized(request: Request) -> bool:
        if not users:
            return True
        given = request.headers.get("authorization", "")
        return any(
            secrets.compare_digest(given.encode(), _basic(name, secret).encode())
            for name, secret in users.items()
        )

    def unauthorized() -> JSONResponse:
        return _odata_error(
            401,
            "401",
            "Не пройдена аутентификация",
            {"WWW-Authenticate": 'Basic realm="1C:Enterprise"'},
        )

    async def odata_fault(request: Request, operation: str) -> JSONResponse | None:
        fault = take_fault(faults, "odata", operation)
        if fault is None:
            return None
        request.state.fault = True  # for the call log
        if fault.after_write:
            request.state.after_write = fault  # the write happens; its answer is lost later
            return None
        await asyncio.sleep(fault.delay_s)
        if not fault.status:
            return None
        return _odata_error(
            fault.status,
            "-1",
            fault.message or "Ошибка сервера (эмулятор)",
            fault.retry_after_header(),
        )

    async def answered(request: Request, response: Response) -> Response:
        """The answer of a write that happened, unless an ``after_write`` fault loses it:
        held ``delay_s`` (a client timing out), then replaced by the fault's status (a
        proxy's gateway error) when it has one."""
        fault = getattr(request.state, "after_write", None)
        if fault is None:
            return response
        await asyncio.sleep(fault.delay_s)
        if not fault.status:
            return response
        return _odata_error(
            fault.status,
            "-1",
            fault.message or "Ошибка шлюза (эмулятор)",
            fault.retry_after_header(),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths of the HTTP service answer in the contract's shape, as 1С's would.
        if request.url.path.startswith(http_service.SERVICE_PREFIX):
            code = "not_found" if exc.status_code == 404 else "validation_failed"
            status = exc.status_code if exc.status_code in (404,) else 400
            return http_service.error(status, code, str(exc.detail))
        return _odata_error(exc.status_code, str(exc.status_code), str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return http_service.error(
            400,
            "validation_failed",
            "the request is not valid",
            details={
                "errors": [
                    {"field": ".".join(map(str, e["loc"])), "problem": e["msg"]}
                    for e in exc.errors()
                ]
            },
        )

    @app.middleware("http")
    async def log_odata_calls(request: Request, call_next):
        response = await call_next(request)
        path = request.url.path
        if path.startswith(ODATA_PREFIX):
            operation = _odata_operation(request.method, path[len(ODATA_PREFIX) :])
            calls.record(
                "odata",
                operation,
                request.method,
                unquote(path),
                response.status_code,
                fault=getattr(request.state, "fault", False),
                storm=getattr(request.state, "storm", None),
                request_id=request.headers.get("x-request-id", ""),
                traceparent=request.headers.get("traceparent", ""),
            )
        return response

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get(ODATA_PREFIX + "{entity_set}")
    async def odata_list(entity_set: str, request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        if entity_set == "$metadata":  # the service's description (CSDL), as 1С publishes it
            return Response(metadata_document(base.sets), media_type="application/xml")
        failed = await odata_fault(request, "odata_get")
        if failed is not None:
            return failed
        params = request.query_params
        one = _DOCUMENT_ADDRESS.match(entity_set)
        if one is not None:  # GET Document_X(guid'…'): the object itself, as 1С answers it
            record = base.sets.get(one["set"], {}).get(one["ref"].lower())
            if record is None:
                return _odata_error(404, "9", f"Не найден объект {entity_set}")
            fields = [f for f in (params.get("$select") or "").split(",") if f]
            body = {k: v for k, v in record.items() if not fields or k in fields}
            return JSONResponse(
                {
                    "odata.metadata": f"{request.base_url}{ODATA_PREFIX[1:]}"
                    f"$metadata#{one['set']}/@Element",
                    **body,
                }
            )
        if entity_set not in base.sets:
            return _odata_error(404, "9", f"Не найден объект {entity_set}")
        if params.get("$format") != "json":
            return _odata_error(400, "-1", "the emulator answers JSON only: send $format=json")
        try:
            rows = apply_query(
                list(base.sets[entity_set].values()),
                filter=params.get("$filter"),
                orderby=params.get("$orderby"),
                top=_whole(params, "$top"),
                skip=_whole(params, "$skip"),
            )
        except ODataQueryError as exc:
            return _odata_error(400, "-1", str(exc))
        return JSONResponse(
            {
                "odata.metadata": f"{request.base_url}{ODATA_PREFIX[1:]}$metadata#{entity_set}",
                "value": rows,
            }
        )

    @app.get(ODATA_PREFIX + "{entity_set}/{table:path}")
    async def odata_virtual_table(entity_set: str, table: str, request: Request) -> JSONResponse:
        # GET AccumulationRegister_X/Balance(Period=…, Condition=…, Dimensions=…): the
        # balances computed from the register's movements (query.balance_rows).
        if not authorized(request):
            return unauthorized()
        failed = await odata_fault(request, "odata_get")
        if failed is not None:
            return failed
        try:
            vt = parse_virtual_table(f"{entity_set}/{table}")
        except ValueError as exc:
            return _odata_error(400, "-1", f"Неверный адрес виртуальной таблицы: {exc}")
        obj = lookup(vt.entity_set) if vt is not None else None
        if vt is None or obj is None or not obj.accumulation or vt.entity_set not in base.sets:
            return _odata_error(404, "9", f"Не найден объект {entity_set}/{table}")
        if vt.table != "Balance":
            return _odata_error(
                400, "-1", f"the emulator serves the Balance table only, not {vt.table}"
            )
        params = request.query_params
        if params.get("$format") != "json":
            return _odata_error(400, "-1", "the emulator answers JSON only: send $format=json")
        # The register's resources in every configuration the objects map knows; the rows
        # carry those the movements use (ВНаличии in УТ 11, Количество in УТ 10.3).
        resources = tuple(dict.fromkeys(r for layout in obj.balances for r in layout.resources))
        try:
            rows = balance_rows(
                base.sets[vt.entity_set].values(),
                resources,
                dimensions=vt.dimensions,
                period=vt.moment("Period"),
                condition=vt.condition,
            )
            rows = apply_query(
                rows,
                filter=params.get("$filter"),
                orderby=params.get("$orderby"),
                top=_whole(params, "$top"),
                skip=_whole(params, "$skip"),
            )
        except ODataQueryError as exc:
            return _odata_error(400, "-1", str(exc))
        return JSONResponse(
            {
                "odata.metadata": f"{request.base_url}{ODATA_PREFIX[1:]}$metadata#"
                f"{vt.entity_set}_{vt.table}",
                "value": rows,
            }
        )

    @app.post(ODATA_PREFIX + "{address}/{action}")
    async def odata_action(address: str, action: str, request: Request) -> Response:
        # POST Document_X(guid'…')/Post?PostingModeOperational=false, and /Unpost.
        if not authorized(request):
            return unauthorized()
        failed = await odata_fault(request, "odata_" + action.lower())
        if failed is not None:
            return failed
        match = _DOCUMENT_ADDRESS.match(address)
        if action not in ("Post", "Unpost") or match is None:
            return _odata_error(400, "-1", f"Неизвестное действие {address}/{action}")
        entity_set, ref = match["set"], match["ref"].lower()
        record = base.sets.get(entity_set, {}).get(ref)
        if record is None:
            return _odata_error(404, "9", f"Не найден объект {entity_set}(guid'{ref}')")
        if action == "Unpost":
            base.write(entity_set, {**record, "Posted": False})
            return Response(status_code=200)
        if params_flag(request, "PostingModeOperational") is None:
            return _odata_error(400, "-1", "PostingModeOperational must be true or false")
        if record.get("DeletionMark"):
            return _odata_error(
                500,
                "-1",
                "Ошибка при вызове метода контекста (Записать): "
                "Не удалось провести документ: объект помечен на удаление",
            )
        try:
            service.check_period(http_service.date_of(record))
        except http_service.Refused as exc:
            return _odata_error(
                500,
                "-1",
                "Ошибка при вызове метода контекста (Записать): "
                f"Не удалось провести документ. {exc.message}",
            )
        base.write(entity_set, {**record, "Posted": True})
        return await answered(request, Response(status_code=200))

    @app.post(ODATA_PREFIX + "{entity_set}")
    async def odata_create(entity_set: str, request: Request) -> Response:
        # POST Document_X?$format=json {fields}: 1С creates the object (Ref_Key given: with
        # that reference) in write mode, unposted, and answers 201 with the record.
        if not authorized(request):
            return unauthorized()
        failed = await odata_fault(request, "odata_create")
        if failed is not None:
            return failed
        if not entity_set.startswith("Document_") or entity_set not in base.sets:
            return _odata_error(404, "9", f"Не найден объект {entity_set}")
        if request.query_params.get("$format") != "json":
            return _odata_error(400, "-1", "the emulator answers JSON only: send $format=json")
        fields = await _json_object(request)
        if fields is None:
            return _odata_error(400, "-1", "Ошибка разбора тела запроса: ожидается объект JSON")
        ref = str(fields.get("Ref_Key") or uuid.uuid4()).lower()
        if not _GUID.match(ref) or ref == _EMPTY_REF:
            return _odata_error(400, "-1", f"Неверное значение свойства Ref_Key: {ref}")
        if ref in base.sets[entity_set]:
            return _odata_error(
                500,
                "-1",
                "Ошибка при вызове метода контекста (Записать): "
                f"Запись с такими ключевыми полями существует! ({entity_set}, {ref})",
            )
        date = str(fields.get("Date") or "")
        try:
            datetime.fromisoformat(date)
            service.check_period(date)
        except ValueError:
            return _odata_error(400, "-1", f"Неверное значение свойства Date: {date!r}")
        except http_service.Refused as exc:
            return _odata_error(
                500, "-1", f"Ошибка при вызове метода контекста (Записать): {exc.message}"
            )
        service.numbers[entity_set] += 1
        record = {
            "DeletionMark": False,
            "Number": f"ММ00-{service.numbers[entity_set]:06d}",
            **{k: v for k, v in fields.items() if k not in _SYSTEM_FIELDS},
            "Ref_Key": ref,
            "Posted": False,
        }
        stored = base.write(entity_set, record)
        address = f"{entity_set}(guid'{ref}')"
        return await answered(
            request,
            JSONResponse(
                {
                    "odata.metadata": f"{request.base_url}{ODATA_PREFIX[1:]}$metadata#{entity_set}/@Element",
                    **stored,
                },
                status_code=201,
                headers={
                    "Location": f"{request.base_url}{ODATA_PREFIX[1:]}{quote(address, safe=_SAFE)}"
                },
            ),
        )

    @app.patch(ODATA_PREFIX + "{address}")
    async def odata_patch(address: str, request: Request) -> Response:
        # PATCH Document_X(guid'…')?$format=json {fields}: 1С writes the changed fields and
        # answers 200 with the record; 404 when the base holds no such object.
        if not authorized(request):
            return unauthorized()
        failed = await odata_fault(request, "odata_patch")
        if failed is not None:
            return failed
        match = _DOCUMENT_ADDRESS.match(address)
        if match is None:
            return _odata_error(400, "-1", f"Неверный адрес объекта {address}")
        if request.query_params.get("$format") != "json":
            return _odata_error(400, "-1", "the emulator answers JSON only: send $format=json")
        entity_set, ref = match["set"], match["ref"].lower()
        record = base.sets.get(entity_set, {}).get(ref)
        if record is None:
            return _odata_error(404, "9", f"Не найден объект {entity_set}(guid'{ref}')")
        fields = await _json_object(request)
        if fields is None:
            return _odata_error(400, "-1", "Ошибка разбора тела запроса: ожидается объект JSON")
        if str(fields.get("Ref_Key", ref)).lower() != ref:
            return _odata_error(400, "-1", "Ref_Key в теле запроса не совпадает с адресом объекта")
        try:
            service.check_period(http_service.date_of(record))
        except http_service.Refused as exc:
            return _odata_error(
                500, "-1", f"Ошибка при вызове метода контекста (Записать): {exc.message}"
            )
        changed = {k: v for k, v in fields.items() if k not in _SYSTEM_FIELDS}
        stored = base.write(entity_set, {**record, **changed})
        return await answered(
            request,
            JSONResponse(
                {
                    "odata.metadata": f"{request.base_url}{ODATA_PREFIX[1:]}$metadata#{entity_set}/@Element",
                    **stored,
                }
            ),
        )

    @app.put("/_emulator/odata/{entity_set}")
    async def admin_write(entity_set: str, request: Request) -> JSONResponse:
        body = await request.json()
        if entity_set not in base.sets:
            return JSONResponse({"error": f"unknown entity set {entity_set}"}, status_code=404)
        try:
            stored = [
                base.write(entity_set, r) for r in (body if isinstance(body, list) else [body])
            ]
        except (RecordRejected, KeyError) as exc:
            return JSONResponse({"error": f"record without an identity: {exc}"}, status_code=422)
        return JSONResponse(stored if isinstance(body, list) else stored[0])

    @app.delete("/_emulator/odata/{entity_set}")
    async def admin_delete(entity_set: str, request: Request) -> JSONResponse:
        # The body names the record by its identity: {"Ref_Key": …} or a register's dimensions.
        try:
            key = base.key(entity_set, await request.json())
        except (RecordRejected, KeyError) as exc:
            return JSONResponse({"error": f"no identity in the body: {exc}"}, status_code=422)
        removed = base.sets.get(entity_set, {}).pop(key, None)
        return JSONResponse({"deleted": removed is not None}, status_code=200 if removed else 404)

    @app.post("/_emulator/faults")
    async def add_fault(spec: FaultSpec) -> dict:
        faults.append(Fault(**spec.model_dump()))
        return {"faults": [asdict(f) for f in faults]}

    @app.get("/_emulator/faults")
    async def list_faults() -> dict:
        return {"faults": [asdict(f) for f in faults]}

    @app.delete("/_emulator/faults")
    async def clear_faults() -> dict:
        cleared = len(faults)
        faults.clear()
        return {"faults": 0, "cleared": cleared}

    @app.post("/_emulator/storm")
    async def start_storm(spec: StormSpec) -> dict:
        # The same storm as the Bitrix24 emulator's (kinds and mix in its StormSpec).
        app.state.storm = Storm(spec)
        return app.state.storm.status()

    @app.get("/_emulator/storm")
    async def storm_status() -> dict:
        return app.state.storm.status() if app.state.storm else {"active": False}

    @app.delete("/_emulator/storm")
    async def stop_storm() -> dict:
        storm, app.state.storm = app.state.storm, None
        return {**storm.status(), "active": False} if storm else {"active": False}

    @app.get("/_emulator/calls")
    async def list_calls(interface: str | None = None, operation: str | None = None) -> list[dict]:
        return calls.list(interface=interface, operation=operation)

    @app.delete("/_emulator/calls")
    async def clear_calls() -> dict:
        return {"cleared": calls.clear()}

    @app.get("/_emulator/rules")
    async def get_rules() -> dict:
        return RulesSpec(
            closed_before=service.closed_before, strict_references=service.strict_references
        ).model_dump(mode="json")

    @app.put("/_emulator/rules")
    async def put_rules(spec: RulesSpec) -> dict:
        service.closed_before = (
            spec.closed_before.replace(tzinfo=None) if spec.closed_before else None
        )
        service.strict_references = spec.strict_references
        return spec.model_dump(mode="json")

    @app.get("/_emulator/operations")
    async def list_operations() -> list[dict]:
        return [service.current(stored.result) for stored in service.results.values()]

    @app.post("/_emulator/reset")
    async def reset() -> dict:
        service.reset()
        faults.clear()
        app.state.storm = None
        return {"calls_cleared": calls.clear()}

    http_service.mount(app, service, faults=faults, calls=calls, authorized=authorized)

    @app.put("/trade/hs/mm/documents/{doc_id}", include_in_schema=False)
    async def put_document(
        doc_id: str, request: Request, idempotency_key: str = Header(..., alias="Idempotency-Key")
    ) -> JSONResponse:
        # The first placeholder of the service, kept for its existing test; not in the contract.
        previous = documents.get(idempotency_key)
        if previous is not None:
            return JSONResponse(previous, status_code=200)
        answer = {"id": doc_id, "status": "posted", "body": await request.json()}
        documents[idempotency_key] = answer
        return JSONResponse(answer, status_code=201)

    return app


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_EMPTY_REF = "00000000-0000-0000-0000-000000000000"
_SAFE = "()'"  # a header is latin-1: the Cyrillic of an address is percent-encoded
# Set by 1С itself: a body's values for them are not written.
_SYSTEM_FIELDS = frozenset({"Ref_Key", "DataVersion", "Posted", "odata.metadata"})


def _odata_operation(method: str, rest: str) -> str:
    """The call log's operation of an OData request: odata_get, odata_create, odata_patch,
    odata_post, odata_unpost."""
    if method == "GET":
        return "odata_get"
    if method == "PATCH":
        return "odata_patch"
    if "/" in rest:
        return "odata_" + rest.rsplit("/", 1)[-1].lower()
    return "odata_create"


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def params_flag(request: Request, name: str) -> bool | None:
    """A boolean query option (absent: false, as 1С defaults it); None when unreadable."""
    value = request.query_params.get(name, "false").lower()
    return {"true": True, "false": False}.get(value)


def _whole(params: Any, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise ODataQueryError(f"{name} must be a whole number")
    return int(value)
