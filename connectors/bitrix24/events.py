"""Bitrix24 outbound events: which ones we take, what they name, and the ids-only record.

Bitrix24 posts an event as a PHP-style form (see :mod:`connectors.bitrix24.form`). Events
carry ids only; the enrichment worker fetches the entity. This module turns a parsed form
into an :class:`EventRef` (entity, id, kind) or says precisely why it is not one, and
defines the record that travels on ``raw.bitrix24.event`` — written by the bridge and by
the fallback poller alike, read by the enrichment worker. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.errors import ConnectorError
from mmstream.envelope import CloudEvent, change_id
from mmstream.errors import InvalidRecord

KINDS = ("ADD", "UPDATE", "DELETE")
#: The kind of the records the cursor poller publishes (a change seen by listing).
POLL = "POLL"

# Leads are in none of the four flows and nothing reads them: their events are answered
# `unsupported_event` rather than accepted into a topic nobody consumes (design invariant 10).
_CRM = {"DEAL": "deal", "CONTACT": "contact", "COMPANY": "company"}
#: Event name -> (entity, kind). Names are compared upper-case.
SUPPORTED: dict[str, tuple[str, str]] = {
    **{f"ONCRM{name}{kind}": (entity, kind) for name, entity in _CRM.items() for kind in KINDS},
    **{f"ONCRMDYNAMICITEM{kind}": ("item", kind) for kind in KINDS},
    **{f"CATALOG.PRODUCT.ON.{kind}": ("product", kind) for kind in KINDS},
    **{f"ONTASK{kind}": ("task", kind) for kind in KINDS},
}
ENTITIES = ("deal", "contact", "company", "item", "product", "task")

# Application lifecycle callbacks reach the same handler URL when an app is (re)installed.
_LIFECYCLE = {"ONAPPINSTALL", "ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPTEST"}
_ID = re.compile(r"^[1-9][0-9]{0,18}$")
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,99}$")


class EventRejected(ConnectorError):
    """A request to the event handler that is not an event we take; ``reason`` says why."""

    code = "bitrix24_event_rejected"

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


class NotAnEvent(EventRejected):
    """Not an outbound event at all: empty, a placement (app page) opening, or junk."""

    code = "bitrix24_not_an_event"


class MissingPortalAuth(EventRejected):
    """An event without ``auth[member_id]`` / ``auth[application_token]``: unauthenticated."""

    code = "bitrix24_missing_auth"


class UnsupportedEvent(EventRejected):
    """A well-formed event we do not handle (install callbacks, other modules' events)."""

    code = "bitrix24_unsupported_event"


class MalformedEvent(EventRejected):
    """A supported event whose ids are missing or not ids."""

    code = "bitrix24_malformed_event"


@dataclass(frozen=True)
class PortalAuth:
    """The ``auth[...]`` block of an event: which portal sent it, and its app token."""

    member_id: str
    application_token: str
    domain: str = ""
    client_endpoint: str = ""
    server_endpoint: str = ""


@dataclass(frozen=True)
class EventRef:
    """What an event is about: one entity (and for smart processes, its type) and the kind."""

    entity: str
    id: str
    kind: str
    event: str
    entity_type_id: str | None = None

    @property
    def key(self) -> str:
        """The record key: ``deal:42``; smart processes ``item:<entityTypeId>:<id>``."""
        if self.entity == "item":
            return f"item:{self.entity_type_id}:{self.id}"
        return f"{self.entity}:{self.id}"

    def record(
        self,
        *,
        member_id: str,
        domain: str,
        ts: str,
        handler_id: str = "",
        received_at: str,
        version: str | None = None,
    ) -> dict[str, Any]:
        """The ids-only value published to ``raw.bitrix24.event``."""
        return {
            "event": self.event,
            "kind": self.kind,
            "entity": self.entity,
            "id": self.id,
            "entity_type_id": self.entity_type_id,
            "key": self.key,
            "member_id": member_id,
            "domain": domain,
            "ts": ts,
            "event_handler_id": handler_id,
            "received_at": received_at,
            "version": version,
        }

    @classmethod
    def from_record(cls, doc: Any) -> EventRef:
        """Read a ``raw.bitrix24.event`` value back; InvalidRecord if it is not one."""
        if not isinstance(doc, dict):
            raise InvalidRecord("a bitrix24 event record must be a JSON object")
        entity, kind, ident = doc.get("entity"), doc.get("kind"), str(doc.get("id") or "")
        if entity not in ENTITIES or kind not in (*KINDS, POLL) or not _ID.match(ident):
            raise InvalidRecord(
                f"not a bitrix24 event record: entity={entity!r} kind={kind!r} id={ident!r}"
            )
        type_id = doc.get("entity_type_id")
        type_id = None if type_id in (None, "") else str(type_id)
        if (entity == "item") != (type_id is not None) or (type_id and not _ID.match(type_id)):
            raise InvalidRecord(f"entity_type_id {type_id!r} does not fit entity {entity!r}")
        return cls(entity, ident, kind, str(doc.get("event") or kind), type_id)


def event_name(form: Any) -> str:
    """The ``event`` of a parsed form, or NotAnEvent saying what the request was instead."""
    if not isinstance(form, dict) or not form:
        raise NotAnEvent("the body holds no form fields", reason="empty_form")
    if "PLACEMENT" in form:
        raise NotAnEvent(
            "this is a placement (application page) opening, not an event; point "
            "the placement at the application's page, not at the event handler",
            reason="placement",
        )
    name = form.get("event")
    if not isinstance(name, str) or not _EVENT_NAME.match(name):
        raise NotAnEvent(
            "not a Bitrix24 event: the form has no valid 'event' field",
            reason="no_event",
            field="event",
        )
    return name.upper()


def portal_auth(form: dict[str, Any]) -> PortalAuth:
    """The ``auth`` block, or MissingPortalAuth when the portal or its token is not named."""
    auth = form.get("auth")
    if not isinstance(auth, dict):
        raise MissingPortalAuth("the event carries no auth block", reason="no_auth", field="auth")
    member, token = auth.get("member_id"), auth.get("application_token")
    if not isinstance(member, str) or not member:
        raise MissingPortalAuth(
            "auth[member_id] is missing", reason="no_member_id", field="auth[member_id]"
        )
    if not isinstance(token, str) or not token:
        raise MissingPortalAuth(
            "auth[application_token] is missing", reason="no_token", field="auth[application_token]"
        )
    return PortalAuth(
        member,
        token,
        *(_text(auth.get(f)) for f in ("domain", "client_endpoint", "server_endpoint")),
    )


@dataclass(frozen=True)
class AuthorizationCode:
    """The OAuth 2.0 redirect to the application after a user authorised it: a one-time
    ``code`` (valid 30 s) for the token endpoint, and which portal it came from."""

    code: str = field(repr=False)
    domain: str
    member_id: str
    state: str = ""
    scope: str = ""
    server_domain: str = ""


@dataclass(frozen=True)
class AppInstall:
    """The ``ONAPPINSTALL`` event: the installed portal, its application token and the
    application's first OAuth pair."""

    member_id: str
    application_token: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    domain: str = ""
    client_endpoint: str = ""
    expires: str = ""


def authorization_code(params: Any) -> AuthorizationCode | None:
    """The authorization-code redirect in query or form ``params``, or None when the request
    is not one (``code``, ``domain`` and ``member_id`` all present as text)."""
    if not isinstance(params, dict):
        return None
    code, domain, member = (params.get(f) for f in ("code", "domain", "member_id"))
    if (
        not (
            isinstance(code, str)
            and isinstance(domain, str)
            and isinstance(member, str)
            and code
            and domain
            and member
        )
        or "event" in params
    ):
        return None
    return AuthorizationCode(
        code, domain, member, *(_text(params.get(f)) for f in ("state", "scope", "server_domain"))
    )


def app_install(form: dict[str, Any]) -> AppInstall:
    """The ``ONAPPINSTALL`` form's portal and tokens, or MissingPortalAuth naming the field
    that is missing (an install without its tokens cannot be used)."""
    auth = portal_auth(form)
    block = form["auth"]
    for name in ("access_token", "refresh_token"):
        if not isinstance(block.get(name), str) or not block[name]:
            raise MissingPortalAuth(
                f"auth[{name}] is missing", reason=f"no_{name}", field=f"auth[{name}]"
            )
    return AppInstall(
        auth.member_id,
        auth.application_token,
        block["access_token"],
        block["refresh_token"],
        auth.domain,
        auth.client_endpoint,
        _text(block.get("expires")),
    )


def classify(name: str, form: dict[str, Any]) -> EventRef:
    """The entity an event ``name`` (from :func:`event_name`) is about, with its ids checked."""
    if name in _LIFECYCLE:
        raise UnsupportedEvent(
            f"{name} is an application lifecycle callback; the handler takes "
            "data events only (application tokens are configured in "
            "settings.bitrix24.application_tokens)",
            reason="lifecycle",
        )
    if name not in SUPPORTED:
        raise UnsupportedEvent(
            f"event {name} is not handled here", reason="unknown_event", field="event"
        )
    entity, kind = SUPPORTED[name]
    data = form.get("data")
    data = data if isinstance(data, dict) else {}
    if entity == "task":
        # Tasks name the id before and after the change; a deleted task has no "after".
        ident = _dig(data, "FIELDS_AFTER", "ID") or _dig(data, "FIELDS_BEFORE", "ID")
        where = "data[FIELDS_AFTER][ID]"
    else:
        ident, where = _dig(data, "FIELDS", "ID"), "data[FIELDS][ID]"
    if not ident or not _ID.match(ident):
        raise MalformedEvent(
            f"{name} needs a numeric {where} (got {ident!r})", reason="bad_id", field=where
        )
    type_id = None
    if entity == "item":
        type_id = _dig(data, "FIELDS", "ENTITY_TYPE_ID")
        if not type_id or not _ID.match(type_id):
            raise MalformedEvent(
                f"{name} needs a numeric data[FIELDS][ENTITY_TYPE_ID] (got {type_id!r})",
                reason="bad_entity_type_id",
                field="data[FIELDS][ENTITY_TYPE_ID]",
            )
    return EventRef(entity, ident, kind, name, type_id)


def _dig(data: dict[str, Any], section: str, field: str) -> str | None:
    block = data.get(section)
    if not isinstance(block, dict):
        return None  # e.g. FIELDS_AFTER=undefined on ONTASKDELETE
    value = block.get(field)
    return value.strip() if isinstance(value, str) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def cloud_event(
    ref: EventRef, *, origin: str, occurrence: str, time: str, request_id: str = ""
) -> CloudEvent:
    """CloudEvent attributes of an event record; ``occurrence`` names this sighting of the
    change (portal + event + ts, or POLL + version), so a re-sent one keeps its id."""
    return CloudEvent(
        id=change_id("bitrix24_event", ref.key, occurrence),
        source=f"/bitrix24/{origin}",
        type=f"ru.mastermobile.bitrix24.{ref.entity}.{ref.kind.lower()}.v1",
        subject=ref.key,
        time=time,
        request_id=request_id,
    )


def epoch_iso(ts: str) -> str | None:
    """The event's ``ts`` (epoch seconds) as RFC 3339 UTC, or None when it is not one."""
    if not re.fullmatch(r"[0-9]{9,11}", ts or ""):
        return None
    return datetime.fromtimestamp(int(ts), UTC).isoformat().replace("+00:00", "Z")
