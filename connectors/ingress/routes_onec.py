"""1C push routes: one Номенклатура record, or a batch with a result per record."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from connectors.ingress.auth import require_role
from connectors.ingress.body import read_json
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.publish import Accepted, onec_event, publish
from mmstream.envelope import change_id
from mmstream.metrics import INGRESS_RECORDS
from streams.normalize.onec_product import OneCNomenclature, validation_details

router = APIRouter(prefix="/v1/onec", tags=["1C push"])

_PRODUCT_SCHEMA = {"$ref": "#/components/schemas/OneCNomenclature"}
_RECORD_BODY = {"required": True, "content": {"application/json": {"schema": _PRODUCT_SCHEMA}}}
_BATCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [
        {"type": "array", "items": _PRODUCT_SCHEMA},
        {"type": "object", "required": ["value"],
         "properties": {"value": {"type": "array", "items": _PRODUCT_SCHEMA}}},
    ]}}},
}


def _source(request: Request) -> None:
    request.scope.setdefault("state", {})["source"] = "onec"


def _accept(request: Request, doc: Any, raw: bytes | None) -> Accepted:
    record = OneCNomenclature.model_validate(doc)
    ref = str(record.Ref_Key)
    event = onec_event(
        entity="product", source_id=ref, version=record.DataVersion,
        principal=request.state.principal, request_id=request.state.request_id,
        event_id=change_id("product", ref, record.DataVersion),
    )
    if raw is None:
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    return Accepted(key=ref, value=raw, event=event)


@router.post(
    "/products",
    status_code=202,
    summary="Push one 1C Номенклатура record (OData shape)",
    openapi_extra={"requestBody": _RECORD_BODY},
    dependencies=[Depends(_source), Depends(require_role("1c"))],
    responses={202: {"description": "stored in Kafka (acks=all)"}},
)
async def post_product(request: Request) -> JSONResponse:
    """Validate one record, publish it keyed by Ref_Key, answer after the broker's ack."""
    settings = request.app.state.settings
    raw, doc = await read_json(request, settings.ingress.max_body_bytes)
    if not isinstance(doc, dict):
        raise ApiError(ErrorKind.VALIDATION_FAILED, "expected one JSON object (a Номенклатура record)")
    try:
        accepted = _accept(request, doc, raw)
    except ValidationError as exc:
        INGRESS_RECORDS.labels("onec", "product", "rejected").inc()
        raise ApiError(ErrorKind.VALIDATION_FAILED, "the record is not a valid Номенклатура record",
                       details=validation_details(exc)) from None
    (delivered,) = await publish(request.app.state.producer, request.app.state.topics["raw.onec.product"],
                                 [accepted], settings.ingress.retry_after_s)
    INGRESS_RECORDS.labels("onec", "product", "accepted").inc()
    return JSONResponse(
        status_code=202,
        content={"status": "accepted", "event_id": accepted.event.id, "id": accepted.key,
                 "partition": delivered.partition, "offset": delivered.offset,
                 "request_id": request.state.request_id},
    )


@router.post(
    "/products/batch",
    summary="Push many Номенклатура records: a JSON array or an OData {\"value\": [...]} body",
    openapi_extra={"requestBody": _BATCH_BODY},
    dependencies=[Depends(_source), Depends(require_role("1c"))],
    responses={200: {"description": "all accepted"}, 207: {"description": "some rejected"},
               422: {"description": "all rejected"}},
)
async def post_products_batch(request: Request) -> JSONResponse:
    """Validate each record; publish the valid ones; answer a result per record."""
    settings = request.app.state.settings
    _, doc = await read_json(request, settings.ingress.max_body_bytes)
    items = doc.get("value") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise ApiError(ErrorKind.VALIDATION_FAILED,
                       'expected a non-empty JSON array or an object {"value": [...]}')
    if len(items) > settings.ingress.max_batch_records:
        raise ApiError(ErrorKind.BATCH_TOO_LARGE,
                       f"at most {settings.ingress.max_batch_records} records per batch")
    results: list[dict[str, Any]] = [{} for _ in items]
    accepted: list[tuple[int, Accepted]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ApiError(ErrorKind.VALIDATION_FAILED, "each record must be a JSON object")
            accepted.append((index, _accept(request, item, None)))
        except ValidationError as exc:
            results[index] = {"index": index, "status": "rejected", "error": {
                "code": ErrorKind.VALIDATION_FAILED.code, "message": "not a valid Номенклатура record",
                "details": validation_details(exc)}}
        except ApiError as exc:
            results[index] = {"index": index, "status": "rejected",
                              "error": {"code": exc.kind.code, "message": exc.message}}
    if accepted:
        delivered = await publish(request.app.state.producer, request.app.state.topics["raw.onec.product"],
                                  [a for _, a in accepted], settings.ingress.retry_after_s)
        for (index, acc), dlv in zip(accepted, delivered, strict=True):
            results[index] = {"index": index, "status": "accepted", "event_id": acc.event.id,
                              "id": acc.key, "partition": dlv.partition, "offset": dlv.offset}
    n_ok, n_bad = len(accepted), len(items) - len(accepted)
    INGRESS_RECORDS.labels("onec", "product", "accepted").inc(n_ok)
    INGRESS_RECORDS.labels("onec", "product", "rejected").inc(n_bad)
    status = 200 if n_bad == 0 else (207 if n_ok else 422)
    return JSONResponse(status_code=status, content={
        "accepted": n_ok, "rejected": n_bad, "results": results,
        "request_id": request.state.request_id})
