"""Emulator of a 1C:УТ base for the embedded stack: the standard OData catalog read and
the integration HTTP service our egress calls (writes carry an Idempotency-Key)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

_ODATA_ERROR = {"odata.error": {"code": "", "message": {"lang": "ru", "value": ""}}}


def create_app(seed_file: Path | None = None) -> FastAPI:
    """An in-memory 1C base; ``seed_file`` is an OData ``{"value": [...]}`` document."""
    app = FastAPI(title="1C emulator")
    catalogs: dict[str, dict[str, dict]] = {"Catalog_Номенклатура": {}}
    if seed_file and seed_file.exists():
        for rec in json.loads(seed_file.read_text("utf-8"))["value"]:
            catalogs["Catalog_Номенклатура"][rec["Ref_Key"]] = rec
    documents: dict[str, dict] = {}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/trade/odata/standard.odata/{entity_set}")
    async def odata_list(entity_set: str) -> JSONResponse:
        if entity_set not in catalogs:
            body = json.loads(json.dumps(_ODATA_ERROR))
            body["odata.error"]["code"] = "9"
            body["odata.error"]["message"]["value"] = f"Не найден объект {entity_set}"
            return JSONResponse(body, status_code=404)
        return JSONResponse({"odata.metadata": f"$metadata#{entity_set}",
                             "value": list(catalogs[entity_set].values())})

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
