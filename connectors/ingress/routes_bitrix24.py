"""The Bitrix24 event handler: outbound events in, ids-only records on raw.bitrix24.event.

Bitrix24 posts each event once, form-encoded, waits only briefly and NEVER retries; so the
handler answers as soon as the broker acknowledged the record, and a failed delivery is
recovered by the enrichment worker's cursor poller, not by Bitrix24. Authenticity is the
portal's application token (there is no signature), compared in constant time; the route
therefore authenticates itself (no bearer token or API key: Bitrix24 cannot send one).
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from connectors.bitrix24.event_dedupe import first_in_window
from connectors.bitrix24.events import (
    EventRef,
    EventRejected,
    MalformedEvent,
    MissingPortalAuth,
    NotAnEvent,
    PortalAuth,
    UnsupportedEvent,
    classify,
    cloud_event,
    epoch_iso,
    event_name,
    portal_auth,
)
from connectors.bitrix24.form import MalformedForm, parse_php_form
from connectors.ingress.auth import authenticates_itself
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.publish import Accepted, publish
from mmstream.envelope import now_iso
from mmstream.metrics import INGRESS_RECORDS
from mmstream.settings import Bitrix24Settings

router = APIRouter(prefix="/v1/bitrix24", tags=["Bitrix24 events"])

FORM = "application/x-www-form-urlencoded"
TOPIC = "raw.bitrix24.event"
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
_EVENT_BODY = {
    "required": True,
    "content": {FORM: {"schema": {"type": "object", "description":
        "As Bitrix24 posts it: event=ONCRMDEALUPDATE&event_handler_id=…&data[FIELDS][ID]=…&ts=…"
        "&auth[domain]=…&auth[member_id]=…&auth[application_token]=…"}}},
}


async def _source(request: Request) -> None:
    request.scope.setdefault("state", {})["source"] = "bitrix24"


class EventAnswer(BaseModel):
    """The answer to an event Bitrix24 posted (Bitrix24 itself reads only the status)."""

    status: Literal["accepted", "duplicate"]
    key: str
    event_id: str
    request_id: str
    partition: int | None = None
    offset: int | None = None


def _error(text: str) -> dict:
    return {"description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


@router.post(
    "/events",
    summary="Receive a Bitrix24 outbound event (CRM, smart process, catalog, task)",
    openapi_extra=authenticates_itself({"requestBody": _EVENT_BODY}),
    dependencies=[Depends(_source)],
    responses={
        200: {"model": EventAnswer, "description": "stored in Kafka (acks=all): `accepted`; or "
              "a near-duplicate of an event not fetched yet, dropped: `duplicate`"},
        400: _error("not an event (`bad_request`; details.reason: empty_body, placement, "
                    "no_event, malformed_form)"),
        401: _error("no or wrong auth[application_token] (`unauthenticated`)"),
        403: _error("a portal (auth[member_id]) whose token is not configured (`forbidden`)"),
        415: _error("not application/x-www-form-urlencoded (`unsupported_media_type`)"),
        422: _error("an event not handled here, e.g. ONAPPINSTALL (`unsupported_event`), or "
                    "without a numeric id (`validation_failed`)"),
    },
)
async def post_event(request: Request) -> JSONResponse:
    """Authenticate and classify one event, publish it keyed by entity, answer 200."""
    settings = request.app.state.settings
    raw = await request.body()  # bounded by the bridge's BodyLimit middleware (413)
    try:
        if not raw.strip():
            raise NotAnEvent("the body is empty: expected a Bitrix24 event form",
                             reason="empty_body")
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != FORM:
            raise ApiError(ErrorKind.UNSUPPORTED_MEDIA_TYPE,
                           f"Bitrix24 posts events as {FORM} (got {media or 'no content type'!r})")
        form = parse_php_form(raw)
        name = event_name(form)
        auth = portal_auth(form)
        _authenticate(settings.bitrix24, auth)
        ref = classify(name, form)
    except (EventRejected, MalformedForm) as exc:
        INGRESS_RECORDS.labels("bitrix24", "event", "rejected").inc()
        raise _rejection(exc) from None
    except ApiError:
        INGRESS_RECORDS.labels("bitrix24", "event", "rejected").inc()
        raise
    return await _accept(request, ref, auth, form)


async def _accept(request: Request, ref: EventRef, auth: PortalAuth, form: dict) -> JSONResponse:
    settings, state = request.app.state.settings, request.app.state
    ts = form.get("ts") if isinstance(form.get("ts"), str) else ""
    received = now_iso()
    domain = auth.domain if _HOST.match(auth.domain) else ""
    handler = form.get("event_handler_id") if isinstance(form.get("event_handler_id"), str) else ""
    record = ref.record(member_id=auth.member_id, domain=domain, ts=ts, handler_id=handler,
                        received_at=received)
    event = cloud_event(ref, origin=domain or auth.member_id,
                        occurrence=f"{auth.member_id}:{ref.event}:{ts or received}",
                        time=epoch_iso(ts) or received, request_id=request.state.request_id)
    accepted = Accepted(ref.key, json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode(),
                        event)
    body = {"key": ref.key, "event_id": event.id, "request_id": request.state.request_id}
    async with first_in_window(state.engine, member_id=auth.member_id, key=ref.key, kind=ref.kind,
                               window_s=settings.bitrix24.event_dedupe_window_s) as first:
        if not first:
            INGRESS_RECORDS.labels("bitrix24", ref.entity, "duplicate").inc()
            return JSONResponse({"status": "duplicate", **body})
        (delivered,) = await publish(state.producer, state.topics[TOPIC], [accepted],
                                     settings.ingress.retry_after_s)
    INGRESS_RECORDS.labels("bitrix24", ref.entity, "accepted").inc()
    return JSONResponse({"status": "accepted", "partition": delivered.partition,
                         "offset": delivered.offset, **body})


def _authenticate(bx: Bitrix24Settings, auth: PortalAuth) -> None:
    expected = bx.application_tokens.get(auth.member_id)
    if expected is None:
        raise ApiError(ErrorKind.FORBIDDEN, "events from this portal (auth[member_id]) are not "
                       "accepted: its application token is not configured")
    if not hmac.compare_digest(expected.get_secret_value().encode(), auth.application_token.encode()):
        raise ApiError(ErrorKind.UNAUTHENTICATED,
                       "auth[application_token] does not match this portal's application token")


def _rejection(exc: EventRejected | MalformedForm) -> ApiError:
    if isinstance(exc, MalformedForm):
        return ApiError(ErrorKind.BAD_REQUEST, f"not a Bitrix24 event form: {exc}",
                        details=[{"reason": "malformed_form"}])
    kind = {MissingPortalAuth: ErrorKind.UNAUTHENTICATED, UnsupportedEvent: ErrorKind.UNSUPPORTED_EVENT,
            MalformedEvent: ErrorKind.VALIDATION_FAILED}.get(type(exc), ErrorKind.BAD_REQUEST)
    detail = {"reason": exc.reason, **({"field": exc.field} if exc.field else {})}
    return ApiError(kind, str(exc), details=[detail])

