"""Emulator of a 1C:УТ base for the embedded stack and tests: the standard OData interface
(read-only, JSON, basic auth, ``$filter $orderby $top $skip``) and the integration HTTP
service our egress calls (writes carry an Idempotency-Key).

Admin endpoints change the base as a user would: ``PUT /_emulator/odata/{EntitySet}``
writes records (each write gets a new DataVersion, as in 1С), ``DELETE`` removes one (it
vanishes without a tombstone, as in 1С), ``POST /_emulator/faults`` makes OData requests
slow or fail.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from connectors.onec.emulator_query import ODataQueryError, apply_query
from connectors.onec.objects import OBJECTS, lookup
from connectors.onec.records import RecordRejected, identity

ODATA_PREFIX = "/trade/odata/standard.odata/"
DEFAULT_ENTITY_SETS = tuple(obj.odata_name for obj in OBJECTS)


def _odata_error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}},
                        status_code=status, headers=headers)


class ODataBase:
    """The emulated base's entity sets: record key -> record, DataVersion on every write."""

    def __init__(self, entity_sets: Iterable[str]) -> None:
        self.sets: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in entity_sets}
        self._writes = 0x100  # above the small versions the captured fixtures carry

    def key(self, entity_set: str, record: dict[str, Any]) -> str:
        """The record's identity: Ref_Key, or a register record's period and dimensions."""
        obj = lookup(entity_set)
        if obj is None:
            return str(record["Ref_Key"]).lower()
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
                stored["DataVersion"] = base64.b64encode(self._writes.to_bytes(4, "big") + bytes(4)).decode()
        self.sets[entity_set][self.key(entity_set, stored)] = stored
        return stored


def create_app(seed_file: Path | None = None, *, entity_sets: Iterable[str] = DEFAULT_ENTITY_SETS,
               username: str | None = None, password: str | None = None) -> FastAPI:
    """An in-memory 1C base.

    ``seed_file`` is an OData ``{"odata.metadata": "…#EntitySet", "value": [...]}`` document
    (entity set from its metadata, Catalog_Номенклатура when it names none). With a
    ``username`` the OData interface requires basic auth with that user and ``password``.
    """
    app = FastAPI(title="1C emulator")
    base = ODataBase(entity_sets)
    if seed_file and seed_file.exists():
        doc = json.loads(seed_file.read_text("utf-8-sig"))
        target = str(doc.get("odata.metadata", "")).rpartition("#")[2] or "Catalog_Номенклатура"
        for rec in doc["value"]:
            base.load(target, rec)
    faults: list[dict[str, Any]] = []
    documents: dict[str, dict] = {}
    app.state.base = base

    def authorized(request: Request) -> bool:
        if username is None:
            return True
        expected = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        given = request.headers.get("authorization", "")
        return secrets.compare_digest(given.encode(), f"Basic {expected}".encode())

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get(ODATA_PREFIX + "{entity_set}")
    async def odata_list(entity_set: str, request: Request) -> JSONResponse:
        if not authorized(request):
            return _odata_error(401, "401", "Не пройдена аутентификация",
                                {"WWW-Authenticate": 'Basic realm="1C:Enterprise"'})
        fault = _next_fault(faults)
        if fault is not None:
            await asyncio.sleep(fault.get("delay_s", 0))
            if fault.get("status"):
                return _odata_error(fault["status"], "-1", "Ошибка сервера (эмулятор)")
        if entity_set not in base.sets:
            return _odata_error(404, "9", f"Не найден объект {entity_set}")
        params = request.query_params
        if params.get("$format") != "json":
            return _odata_error(400, "-1", "the emulator answers JSON only: send $format=json")
        try:
            rows = apply_query(list(base.sets[entity_set].values()), filter=params.get("$filter"),
                               orderby=params.get("$orderby"), top=_whole(params, "$top"),
                               skip=_whole(params, "$skip"))
        except ODataQueryError as exc:
            return _odata_error(400, "-1", str(exc))
        return JSONResponse({"odata.metadata": f"{request.base_url}{ODATA_PREFIX[1:]}$metadata#{entity_set}",
                             "value": rows})

    @app.put("/_emulator/odata/{entity_set}")
    async def admin_write(entity_set: str, request: Request) -> JSONResponse:
        body = await request.json()
        if entity_set not in base.sets:
            return JSONResponse({"error": f"unknown entity set {entity_set}"}, status_code=404)
        try:
            stored = [base.write(entity_set, r) for r in (body if isinstance(body, list) else [body])]
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
    async def add_fault(request: Request) -> dict:
        # {"status": 503, "delay_s": 0.2, "count": 1, "after": 0}: after `after` good requests,
        # the next `count` OData requests (-1: all) wait `delay_s` and fail with `status`.
        fault = {"status": None, "delay_s": 0.0, "count": 1, "after": 0, **(await request.json())}
        faults.append(fault)
        return fault

    @app.delete("/_emulator/faults")
    async def clear_faults() -> dict:
        faults.clear()
        return {"faults": 0}

    @app.put("/trade/hs/mm/documents/{doc_id}")
    async def put_document(doc_id: str, request: Request,
                           idempotency_key: str = Header(..., alias="Idempotency-Key")) -> JSONResponse:
        # Same key -> same answer, no second write: the contract our egress relies on.
        previous = documents.get(idempotency_key)
        if previous is not None:
            return JSONResponse(previous, status_code=200)
        answer = {"id": doc_id, "status": "posted", "body": await request.json()}
        documents[idempotency_key] = answer
        return JSONResponse(answer, status_code=201)

    return app


def _whole(params: Any, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise ODataQueryError(f"{name} must be a whole number")
    return int(value)


def _next_fault(faults: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not faults:
        return None
    fault = faults[0]
    if fault["after"] > 0:
        fault["after"] -= 1
        return None
    if fault["count"] > 0:
        fault["count"] -= 1
        if fault["count"] == 0:
            faults.pop(0)
    return fault
