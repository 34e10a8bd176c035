"""1С push routes: one record, or a batch with a result per record, of any 1С object of the
four flows (УТ 11 and УТ 10.3 names, OData entity-set names too; see connectors/onec/objects.py).

``/v1/onec/products`` and ``/v1/onec/products/batch`` (the first API version) are the same
routes with the alias ``products`` for Номенклатура. Batch posts may carry exchange-plan
message numbers (connectors/onec/exchange.py): a re-sent message is answered, not re-published.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from connectors.ingress.auth import require_role
from connectors.ingress.body import read_json
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.idempotency_store import claim_lease_s
from connectors.ingress.publish import Accepted, onec_event, publish, too_large
from connectors.onec import exchange
from connectors.onec.objects import OBJECTS, OneCObject, accepted_names, lookup
from connectors.onec.validation import (
    CatalogRecord,
    DocumentRecord,
    OneCRecord,
    PriceRecord,
    RecordRejected,
    validate,
)
from mmstream.envelope import change_id
from mmstream.errors import MMStreamError
from mmstream.metrics import INGRESS_RECORDS

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/onec", tags=["1С push"])

_RECORD_SCHEMA = {
    "anyOf": [
        {"$ref": "#/components/schemas/OneCNomenclature"},
        *(m.model_json_schema(by_alias=True) for m in (CatalogRecord, DocumentRecord, PriceRecord)),
    ]
}
_RECORD_BODY = {"required": True, "content": {"application/json": {"schema": _RECORD_SCHEMA}}}
_BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"type": "array", "items": _RECORD_SCHEMA},
                    {
                        "type": "object",
                        "required": ["value"],
                        "properties": {"value": {"type": "array", "items": _RECORD_SCHEMA}},
                    },
                ]
            }
        }
    },
}
_EXCHANGE_PARAMS = [
    {
        "name": exchange.NODE_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Exchange-plan node code (UTF-8, may be percent-encoded); with the message number",
    },
    {
        "name": exchange.NUMBER_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        "description": "Exchange message number; a number received before is answered again, "
        "with nothing published",
    },
]
_OBJECT = PathParam(
    description="1С object: "
    + ", ".join(o.name for o in OBJECTS)
    + "; or its OData entity set, e.g. Catalog_Номенклатура; `products` = Номенклатура"
)


async def _source(request: Request) -> None:
    request.scope.setdefault("state", {})["source"] = "onec"


_GUARDS = [Depends(_source), Depends(require_role("1c"))]


def _object(name: str) -> OneCObject:
    obj = lookup(name)
    if obj is None:
        raise ApiError(
            ErrorKind.UNKNOWN_OBJECT,
            f"unknown 1С object {name!r}; accepted: "
            + ", ".join(o.name for o in OBJECTS)
            + " (or their OData entity sets, e.g. Catalog_Номенклатура)",
            details=[
                {"field": "object", "problem": "unknown 1С object", "accepted": accepted_names()}
            ],
        )
    return obj


def _accept(request: Request, rec: OneCRecord, raw: bytes) -> Accepted:
    event = onec_event(
        entity=rec.obj.entity,
        source_id=rec.key,
        version=rec.version,
        principal=request.state.principal,
        request_id=request.state.request_id,
        event_id=change_id(rec.obj.entity, rec.key, rec.version),
    )
    return Accepted(key=rec.key, value=raw, event=event)


@router.post(
    "/{object_name}",
    status_code=202,
    summary="Push one 1С record (OData shape) of any object of the four flows",
    openapi_extra={"requestBody": _RECORD_BODY},
    dependencies=_GUARDS,
    responses={
        202: {"description": "stored in Kafka (acks=all)"},
        404: {"description": "unknown 1С object"},
    },
)
async def post_record(request: Request, object_name: str = _OBJECT) -> JSONResponse:
    """Validate one record, publish it keyed by its 1С identity, answer after the broker's ack."""
    obj = _object(object_name)
    if exchange.NODE_HEADER in request.headers or exchange.NUMBER_HEADER in request.headers:
        raise ApiError(
            ErrorKind.BAD_REQUEST,
            "exchange message numbers are accepted on batch posts "
            f"only: POST /v1/onec/{object_name}/batch",
        )
    settings = request.app.state.settings
    raw, doc = await read_json(request, settings.ingress.max_body_bytes)
    if not isinstance(doc, dict):
        raise ApiError(
            ErrorKind.VALIDATION_FAILED, f"expected one JSON object (a {obj.name} record)"
        )
    try:
        accepted = _accept(request, validate(obj, doc), raw)
    except RecordRejected as exc:
        INGRESS_RECORDS.labels("onec", obj.entity, "rejected").inc()
        raise ApiError(
            ErrorKind.VALIDATION_FAILED,
            f"the record is not a valid {obj.name} record",
            details=exc.details,
        ) from None
    (delivered,) = await publish(
        request.app.state.producer,
        request.app.state.topics[obj.topic],
        [accepted],
        settings.ingress.retry_after_s,
        settings.ingress.max_record_bytes,
    )
    INGRESS_RECORDS.labels("onec", obj.entity, "accepted").inc()
    return JSONResponse(
        status_code=202,
        content={
            "status": "accepted",
            "object": obj.name,
            "entity": obj.entity,
            "event_id": accepted.event.id,
            "id": accepted.key,
            "partition": delivered.partition,
            "offset": delivered.offset,
            "request_id": request.state.request_id,
        },
    )


@router.post(
    "/{object_name}/batch",
    summary='Push many 1С records of one object: a JSON array or an OData {"value": [...]} body',
    openapi_extra={"requestBody": _BATCH_BODY, "parameters": _EXCHANGE_PARAMS},
    dependencies=_GUARDS,
    responses={
        200: {"description": "all accepted, or a re-sent exchange message answered again"},
        207: {"description": "some rejected"},
        422: {"description": "all rejected"},
        409: {"description": "exchange message number reused or being published"},
    },
)
async def post_batch(request: Request, object_name: str = _OBJECT) -> JSONResponse:
    """Validate each record; publish the valid ones; answer a result per record."""
    obj = _object(object_name)
    settings = request.app.state.settings
    try:
        numbered = exchange.parse_headers(
            request.headers.get(exchange.NODE_HEADER), request.headers.get(exchange.NUMBER_HEADER)
        )
    except exchange.ExchangeHeadersInvalid as exc:
        raise ApiError(ErrorKind.BAD_REQUEST, str(exc)) from None
    raw, doc = await read_json(request, settings.ingress.max_body_bytes)
    items = doc.get("value") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise ApiError(
            ErrorKind.VALIDATION_FAILED,
            'expected a non-empty JSON array or an object {"value": [...]}',
        )
    if len(items) > settings.ingress.max_batch_records:
        raise ApiError(
            ErrorKind.BATCH_TOO_LARGE,
            f"at most {settings.ingress.max_batch_records} records per batch",
        )
    if numbered is None:
        status, body = await _publish_batch(request, obj, items)
        return JSONResponse(status_code=status, content=body)
    message = exchange.ExchangeMessage(
        principal=request.state.principal,
        node=numbered[0],
        number=numbered[1],
        object_name=obj.name,
        body_sha256=exchange.body_digest(raw),
    )
    return await _publish_message(request, obj, items, message)


async def _publish_message(
    request: Request, obj: OneCObject, items: list, message: exchange.ExchangeMessage
) -> JSONResponse:
    settings = request.app.state.settings
    retry = {"Retry-After": str(settings.ingress.retry_after_s)}
    engine = request.app.state.engine
    if engine is None:
        raise ApiError(
            ErrorKind.DATABASE_UNAVAILABLE,
            "exchange message numbers need the bridge's "
            "database, and none is configured (DATABASE_URL)",
            headers=retry,
        )
    # A claim blocks the number for the longest a publish can take, as an Idempotency-Key.
    lease_s = claim_lease_s(settings)
    try:
        claimed = await exchange.claim(engine, message, lease_s=lease_s)
    except exchange.ExchangeMessageConflict as exc:
        log.error("exchange message number reused", extra={"detail": str(exc)})
        raise ApiError(ErrorKind.CONFLICT, str(exc)) from None
    except exchange.ExchangeMessageBusy as exc:
        raise ApiError(ErrorKind.IDEMPOTENCY_IN_PROGRESS, str(exc), headers=retry) from None
    except MMStreamError as exc:
        if not exc.retriable:
            raise
        raise ApiError(
            ErrorKind.DATABASE_UNAVAILABLE,
            "the exchange message store is unavailable; retry later",
            headers=retry,
        ) from exc
    if not isinstance(claimed, exchange.Claimed):
        INGRESS_RECORDS.labels("onec", obj.entity, "duplicate").inc(len(items))
        log.info(
            "exchange message received again; answered without publishing",
            extra={"node": message.node, "message_no": message.number, "object": obj.name},
        )
        return JSONResponse(
            status_code=200,
            content={
                **claimed,
                "duplicate_message": True,
                "original_request_id": claimed.get("request_id"),
                "request_id": request.state.request_id,
            },
        )
    # No database connection is held from here until the broker answered.
    try:
        status, body = await _publish_batch(request, obj, items)
    except BaseException:
        # Shielded: a cancelled request must still give its number back.
        await asyncio.shield(_give_back(engine, message, claimed))
        raise
    body["duplicate_message"] = False
    if not body["accepted"]:
        await _give_back(engine, message, claimed)
        return JSONResponse(status_code=status, content=body)
    try:
        if not await exchange.remember(engine, message, claimed, body):
            log.warning(
                "exchange message claim was taken over before its answer was stored",
                extra={"node": message.node, "message_no": message.number},
            )
    except Exception:
        # The records are in Kafka: answer so. A re-send after the lease publishes again
        # (same event ids, absorbed downstream).
        log.warning(
            "could not store the answer of an exchange message",
            exc_info=True,
            extra={"node": message.node, "message_no": message.number},
        )
    return JSONResponse(status_code=status, content=body)


async def _give_back(engine, message: exchange.ExchangeMessage, claimed: exchange.Claimed) -> None:
    try:
        await exchange.release(engine, message, claimed)
    except Exception:
        log.warning(
            "could not release an exchange message claim; it ends with its lease",
            exc_info=True,
            extra={"node": message.node, "message_no": message.number},
        )


async def _publish_batch(
    request: Request, obj: OneCObject, items: list
) -> tuple[int, dict[str, Any]]:
    settings = request.app.state.settings
    results: list[dict[str, Any]] = [{} for _ in items]
    accepted: list[tuple[int, Accepted]] = []
    for index, item in enumerate(items):
        try:
            record = validate(obj, item)
        except RecordRejected as exc:
            results[index] = {
                "index": index,
                "status": "rejected",
                "error": {
                    "code": ErrorKind.VALIDATION_FAILED.code,
                    "message": f"not a valid {obj.name} record",
                    "details": exc.details,
                },
            }
            continue
        raw = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        acc = _accept(request, record, raw)
        if (reason := too_large(acc, settings.ingress.max_record_bytes)) is not None:
            results[index] = {
                "index": index,
                "status": "rejected",
                "error": {
                    "code": ErrorKind.RECORD_TOO_LARGE.code,
                    "message": reason,
                    "details": [],
                },
            }
            continue
        accepted.append((index, acc))
    if accepted:
        delivered = await publish(
            request.app.state.producer,
            request.app.state.topics[obj.topic],
            [a for _, a in accepted],
            settings.ingress.retry_after_s,
        )
        for (index, acc), dlv in zip(accepted, delivered, strict=True):
            results[index] = {
                "index": index,
                "status": "accepted",
                "event_id": acc.event.id,
                "id": acc.key,
                "partition": dlv.partition,
                "offset": dlv.offset,
            }
    n_ok, n_bad = len(accepted), len(items) - len(accepted)
    INGRESS_RECORDS.labels("onec", obj.entity, "accepted").inc(n_ok)
    INGRESS_RECORDS.labels("onec", obj.entity, "rejected").inc(n_bad)
    status = 200 if n_bad == 0 else (207 if n_ok else 422)
    return status, {
        "object": obj.name,
        "entity": obj.entity,
        "accepted": n_ok,
        "rejected": n_bad,
        "results": results,
        "request_id": request.state.request_id,
    }
