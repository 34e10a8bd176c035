"""The Bitrix24 event handler: outbound events in, ids-only records on raw.bitrix24.event.

Bitrix24 posts each event once, form-encoded, waits only briefly and NEVER retries; so the
handler answers as soon as the broker acknowledged the record, and a failed delivery is
recovered by the enrichment worker's cursor poller, not by Bitrix24. Authenticity is the
portal's application token (there is no signature), compared in constant time; the route
therefore authenticates itself (no bearer token or API key: Bitrix24 cannot send one).

One portal per deployment (settings.bitrix24.application_tokens names at most one): enrichment,
polling and egress reach one portal, so events of another ``member_id`` are refused as
``unknown_portal``, apart from a wrong token for the served one (``invalid_application_token``).

The same handler URL receives the application's install callbacks: the OAuth authorization-code
redirect (GET or form POST with ``code``, ``domain``, ``member_id``) and the ``ONAPPINSTALL``
event. With ``bitrix24.auth_mode="oauth"`` their tokens are stored in the token table the
workers use; a webhook deployment answers ``install_not_expected``. Nothing reaches Kafka.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.bitrix24.client import _oauth_base
from connectors.bitrix24.errors import Bitrix24Error, ServerError, TransportError
from connectors.bitrix24.event_dedupe import first_in_window
from connectors.bitrix24.events import (
    AuthorizationCode,
    EventRef,
    EventRejected,
    MalformedEvent,
    MissingPortalAuth,
    NotAnEvent,
    PortalAuth,
    UnsupportedEvent,
    app_install,
    authorization_code,
    classify,
    cloud_event,
    epoch_iso,
    event_name,
    portal_auth,
)
from connectors.bitrix24.form import FormTooLarge, MalformedForm, parse_php_form
from connectors.bitrix24.oauth import PgTokenStore, TokenPair, request_authorization_code
from connectors.ingress.auth import authenticates_itself
from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.middleware import max_body
from connectors.ingress.publish import Accepted, publish
from mmstream.envelope import now_iso
from mmstream.errors import ConfigurationError
from mmstream.metrics import INGRESS_RECORDS
from mmstream.settings import Bitrix24Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/bitrix24", tags=["Bitrix24 events"])

FORM = "application/x-www-form-urlencoded"
TOPIC = "raw.bitrix24.event"
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
_EVENT_BODY = {
    "required": True,
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "description": "As Bitrix24 posts it: event=ONCRMDEALUPDATE&event_handler_id=…&data[FIELDS][ID]=…&ts=…"
                "&auth[domain]=…&auth[member_id]=…&auth[application_token]=…",
            }
        }
    },
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


class InstallAnswer(BaseModel):
    """The answer to an install callback whose tokens were stored."""

    status: Literal["installed"]
    member_id: str
    portal: str
    request_id: str


def _error(text: str) -> dict:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


@router.post(
    "/events",
    summary="Receive a Bitrix24 outbound event (CRM, smart process, catalog, task)",
    openapi_extra=authenticates_itself({"requestBody": _EVENT_BODY}),
    # Events are a few hundred bytes: a far smaller limit than the bridge's default.
    dependencies=[Depends(_source), max_body(lambda s: s.ingress.event_max_body_bytes)],
    responses={
        400: _error(
            "not an event (`bad_request`; details.reason: empty_body, placement, "
            "no_event, malformed_form)"
        ),
        200: {
            "model": EventAnswer | InstallAnswer,
            "description": "stored in Kafka "
            "(acks=all): `accepted`; or a near-duplicate of an event not fetched yet, dropped: "
            "`duplicate`; or an install callback (ONAPPINSTALL, OAuth code) whose tokens were "
            "stored: `installed`",
        },
        401: _error(
            "no auth[application_token] (`unauthenticated`), or not the served "
            "portal's (`invalid_application_token`)"
        ),
        403: _error(
            "a portal (auth[member_id]) this deployment does not serve: one portal per "
            "deployment (`unknown_portal`)"
        ),
        409: _error(
            "an install callback at a deployment using an incoming webhook (`install_not_expected`)"
        ),
        502: _error(
            "an OAuth install whose code the token endpoint did not answer "
            "(`token_endpoint_unavailable`)"
        ),
        413: _error(
            "over `ingress.event_max_body_bytes` (`body_too_large`), or a form with too "
            "many, too long or too deeply nested fields (`form_too_large`)"
        ),
        415: _error("not application/x-www-form-urlencoded (`unsupported_media_type`)"),
        422: _error(
            "an event not handled here, e.g. ONAPPUNINSTALL (`unsupported_event`), or "
            "without a numeric id (`validation_failed`)"
        ),
        429: _error(
            "over the portal's rate limit, or (for requests whose token does not match) "
            "the sending address's limit of unverified requests (`rate_limited`)"
        ),
    },
)
async def post_event(request: Request) -> JSONResponse:
    """Authenticate and classify one event, publish it keyed by entity, answer 200."""
    settings = request.app.state.settings
    limits = request.app.state.limits
    try:
        raw = await request.body()  # bounded by the bridge's BodyLimit middleware (413)
        if not raw.strip():
            raise NotAnEvent(
                "the body is empty: expected a Bitrix24 event form", reason="empty_body"
            )
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != FORM:
            raise ApiError(
                ErrorKind.UNSUPPORTED_MEDIA_TYPE,
                f"Bitrix24 posts events as {FORM} (got {media or 'no content type'!r})",
            )
        form = parse_php_form(raw)
        install = _install_shape(form)
        if install is None:
            name = event_name(form)
            auth = portal_auth(form)
            _authenticate(settings.bitrix24, auth)
    except (EventRejected, MalformedForm, ApiError, StarletteHTTPException) as exc:
        # Not (yet) an authentic portal: counted in the address's unverified bucket, which
        # never draws on a verified portal's (Bitrix24 does not re-send a refused event).
        INGRESS_RECORDS.labels("bitrix24", "event", "rejected").inc()
        limits.check_unverified(request.scope)
        if isinstance(exc, (EventRejected, MalformedForm)):
            raise _rejection(exc) from None
        raise
    if install is not None:
        return await _install(request, install)
    # The token matched: from here on the portal's own bucket.
    limits.check(f"portal:{auth.member_id}", verified=True)
    try:
        ref = classify(name, form)
    except EventRejected as exc:
        INGRESS_RECORDS.labels("bitrix24", "event", "rejected").inc()
        raise _rejection(exc) from None
    return await _accept(request, ref, auth, form)


async def _accept(request: Request, ref: EventRef, auth: PortalAuth, form: dict) -> JSONResponse:
    settings, state = request.app.state.settings, request.app.state
    ts = raw_ts if isinstance(raw_ts := form.get("ts"), str) else ""
    received = now_iso()
    domain = auth.domain if _HOST.match(auth.domain) else ""
    handler = raw if isinstance(raw := form.get("event_handler_id"), str) else ""
    record = ref.record(
        member_id=auth.member_id, domain=domain, ts=ts, handler_id=handler, received_at=received
    )
    event = cloud_event(
        ref,
        origin=domain or auth.member_id,
        occurrence=f"{auth.member_id}:{ref.event}:{ts or received}",
        time=epoch_iso(ts) or received,
        request_id=request.state.request_id,
    )
    accepted = Accepted(
        ref.key, json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode(), event
    )
    body = {"key": ref.key, "event_id": event.id, "request_id": request.state.request_id}
    async with first_in_window(
        state.event_engine,
        member_id=auth.member_id,
        key=ref.key,
        kind=ref.kind,
        window_s=settings.bitrix24.event_dedupe_window_s,
    ) as first:
        if not first:
            INGRESS_RECORDS.labels("bitrix24", ref.entity, "duplicate").inc()
            return JSONResponse({"status": "duplicate", **body})
        (delivered,) = await publish(
            state.producer, state.topics[TOPIC], [accepted], settings.ingress.retry_after_s
        )
    INGRESS_RECORDS.labels("bitrix24", ref.entity, "accepted").inc()
    return JSONResponse(
        {"status": "accepted", "partition": delivered.partition, "offset": delivered.offset, **body}
    )


def _authenticate(bx: Bitrix24Settings, auth: PortalAuth) -> None:
    expected = bx.application_tokens.get(auth.member_id)
    if expected is None:
        raise _unknown_portal(bx)
    if not hmac.compare_digest(
        expected.get_secret_value().encode(), auth.application_token.encode()
    ):
        raise ApiError(
            ErrorKind.INVALID_APPLICATION_TOKEN,
            "auth[application_token] does not match this portal's application token",
        )


def _unknown_portal(bx: Bitrix24Settings) -> ApiError:
    served = next(iter(bx.application_tokens), None)  # at most one: see Bitrix24Settings
    if served is None:
        return ApiError(
            ErrorKind.UNKNOWN_PORTAL,
            "this deployment serves no Bitrix24 portal yet: "
            "set bitrix24.application_tokens to {member_id: application token} of "
            "the one portal it serves",
        )
    return ApiError(
        ErrorKind.UNKNOWN_PORTAL,
        f"this deployment serves one Bitrix24 portal "
        f"(member_id {served}); run one deployment per portal",
    )


# -- install callbacks ------------------------------------------------------------------------


_INSTALL_QUERY = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": text,
    }
    for name, text in (
        ("code", "one-time authorization code (exchanged at bitrix24.oauth.token_url)"),
        ("domain", "the portal's domain"),
        ("member_id", "the portal's id"),
        ("state", "echoed by the portal (not issued by this deployment, so not checked)"),
        ("scope", "granted scopes"),
        ("server_domain", "the OAuth server"),
    )
]


@router.get(
    "/events",
    summary="Receive a Bitrix24 OAuth install redirect (authorization code)",
    openapi_extra=authenticates_itself({"parameters": _INSTALL_QUERY}),
    dependencies=[Depends(_source)],
    responses={
        200: {
            "model": InstallAnswer,
            "description": "the code was exchanged and the token "
            "pair stored (`bitrix24.auth_mode=oauth`)",
        },
        400: _error("the token endpoint refused the code (`bad_request`)"),
        403: _error(
            "the code belongs to a portal this deployment does not serve (`unknown_portal`)"
        ),
        405: _error("not an install redirect: events are POSTed (`method_not_allowed`)"),
        409: _error(
            "the deployment uses an incoming webhook, or OAuth is not configured "
            "(`install_not_expected`)"
        ),
        429: _error("over the sending address's limit of unverified requests (`rate_limited`)"),
        502: _error("the token endpoint did not answer (`token_endpoint_unavailable`)"),
    },
)
async def get_install(request: Request) -> JSONResponse:
    """Exchange the code of an OAuth install redirect; anything else keeps the old 405."""
    redirect = authorization_code(dict(request.query_params))
    if redirect is None:
        # As before this route existed: scanners learn nothing new.
        raise StarletteHTTPException(405, headers={"Allow": "POST"})
    return await _install(request, redirect)


def _install_shape(form: Any) -> AuthorizationCode | dict | None:
    """The install callback a form is (the code redirect, or the ONAPPINSTALL form), or None."""
    redirect = authorization_code(form)
    if redirect is not None:
        return redirect
    if (
        isinstance(form, dict)
        and isinstance(form.get("event"), str)
        and form["event"].upper() == "ONAPPINSTALL"
    ):
        return form
    return None


async def _install(request: Request, shape: AuthorizationCode | dict) -> JSONResponse:
    """Store the tokens of an install callback; nothing is published."""
    state = request.app.state
    # Unauthenticated until proven: the address's unverified bucket.
    state.limits.check_unverified(request.scope)
    try:
        member, portal, pair = await _installed_pair(state, shape)
    except EventRejected as exc:
        INGRESS_RECORDS.labels("bitrix24", "install", "rejected").inc()
        raise _rejection(exc) from None
    except ApiError:
        INGRESS_RECORDS.labels("bitrix24", "install", "rejected").inc()
        raise
    await PgTokenStore(state.event_engine).install(portal, pair)
    INGRESS_RECORDS.labels("bitrix24", "install", "installed").inc()
    log.info("bitrix24 application installed", extra={"portal": portal, "member_id": member})
    return JSONResponse(
        {
            "status": "installed",
            "member_id": member,
            "portal": portal,
            "request_id": request.state.request_id,
        }
    )


async def _installed_pair(
    state: Any, shape: AuthorizationCode | dict
) -> tuple[str, str, TokenPair]:
    """(member_id, portal key, pair) of an authentic install for the served portal."""
    bx: Bitrix24Settings = state.settings.bitrix24
    what = "an OAuth authorization code" if isinstance(shape, AuthorizationCode) else "ONAPPINSTALL"
    if bx.auth_mode != "oauth":
        raise ApiError(
            ErrorKind.INSTALL_NOT_EXPECTED,
            f"{what} reached a deployment that uses "
            "an incoming webhook (bitrix24.auth_mode=webhook): it needs no "
            "application install; set bitrix24.auth_mode=oauth to use an OAuth "
            "application instead",
        )
    try:
        if not bx.oauth.client_id or not bx.oauth.client_secret.get_secret_value():
            raise ConfigurationError("bitrix24.oauth.client_id and client_secret are not set")
        portal = urlsplit(_oauth_base(bx.oauth.portal)).netloc
    except ConfigurationError as exc:
        raise ApiError(
            ErrorKind.INSTALL_NOT_EXPECTED,
            f"{what} arrived, but the OAuth application is not configured: {exc}",
        ) from None
    if state.event_engine is None:
        raise ApiError(
            ErrorKind.DATABASE_UNAVAILABLE,
            "no database configured to keep the application's tokens",
        )
    if isinstance(shape, AuthorizationCode):
        return shape.member_id, portal, await _exchange(bx, shape, portal)
    install = app_install(shape)
    # Authenticated like any event: only the served portal's own application token may
    # replace its tokens. A deployment with no token configured stores none from an
    # unauthenticated caller (it would let anyone claim the deployment).
    _authenticate(bx, PortalAuth(install.member_id, install.application_token))
    expires = float(install.expires) if re.fullmatch(r"[0-9]{9,11}", install.expires) else None
    return (
        install.member_id,
        portal,
        TokenPair(
            install.access_token,
            install.refresh_token,
            expires,
            install.client_endpoint or None,
            install.member_id,
        ),
    )


async def _exchange(bx: Bitrix24Settings, redirect: AuthorizationCode, portal: str) -> TokenPair:
    """The pair the token endpoint issues for the code, checked to be the served portal's."""
    served = next(iter(bx.application_tokens), None)
    if served is not None and redirect.member_id != served:
        raise _unknown_portal(bx)
    try:
        async with httpx.AsyncClient(timeout=bx.timeout_s) as http:
            pair = await request_authorization_code(http, bx.oauth, redirect.code)
    except (TransportError, ServerError):
        # The code may be unspent, but it lives 30 s: a new one is the dependable way.
        raise ApiError(
            ErrorKind.TOKEN_ENDPOINT_UNAVAILABLE,
            "the token endpoint "
            "(bitrix24.oauth.token_url) did not answer; open the application again "
            "to get a new code",
        ) from None
    except Bitrix24Error as exc:
        raise ApiError(
            ErrorKind.BAD_REQUEST,
            f"the token endpoint refused the authorization "
            f"code ({exc.code}): it is spent, expired (30 s) or not this "
            "application's",
            details=[{"reason": "code_refused"}],
        ) from None
    # The code proves the install; its answer says which portal. Tokens of another portal than
    # the one the workers reach would be useless there.
    endpoint_host = urlsplit(pair.client_endpoint or "").netloc
    if (pair.member_id and pair.member_id != redirect.member_id) or (
        endpoint_host and endpoint_host != portal
    ):
        raise ApiError(
            ErrorKind.UNKNOWN_PORTAL,
            f"the authorization code was issued for "
            f"another portal than bitrix24.oauth.portal ({portal}); this deployment "
            "serves one Bitrix24 portal: run one deployment per portal",
        )
    return pair


def _rejection(exc: EventRejected | MalformedForm) -> ApiError:
    if isinstance(exc, FormTooLarge):
        return ApiError(
            ErrorKind.FORM_TOO_LARGE,
            f"not a Bitrix24 event form: {exc}",
            details=[{"reason": "form_too_large"}],
        )
    if isinstance(exc, MalformedForm):
        return ApiError(
            ErrorKind.BAD_REQUEST,
            f"not a Bitrix24 event form: {exc}",
            details=[{"reason": "malformed_form"}],
        )
    kind = {
        MissingPortalAuth: ErrorKind.UNAUTHENTICATED,
        UnsupportedEvent: ErrorKind.UNSUPPORTED_EVENT,
        MalformedEvent: ErrorKind.VALIDATION_FAILED,
    }.get(type(exc), ErrorKind.BAD_REQUEST)
    detail = {"reason": exc.reason, **({"field": exc.field} if exc.field else {})}
    return ApiError(kind, str(exc), details=[detail])
