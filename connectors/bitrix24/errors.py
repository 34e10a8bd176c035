"""Bitrix24 REST errors, and the ONE place that decides transient vs permanent for Bitrix24.

:func:`error_from_response` turns an HTTP status and a response body into an exception
class. The error code decides first (codes are compared case-insensitively: the portal
says ``expired_token`` and ``QUERY_LIMIT_EXCEEDED`` alike, and some errors arrive under
unexpected statuses, e.g. ``OVERLOAD_LIMIT`` as 401); the status decides when the code is
empty (legacy CRM methods answer 400 with ``"error": ""`` and only a text) or unknown.
Retry loops read ``retriable`` / ``retry_after`` and alerting reads ``alert``; nothing
else inspects statuses or codes.
"""

from __future__ import annotations

import re
import time
from typing import Any

from connectors.errors import ConnectorError

# Descriptions are kept for humans; a proxy's HTML error page must not flood logs or DLQ headers.
_MAX_DESCRIPTION = 500


class Bitrix24Error(ConnectorError):
    """Bitrix24 refused or failed a call. ``status`` is None when no HTTP answer arrived."""

    code = "bitrix24_error"
    retriable = False
    alert = False
    # Only an InvalidRequest is ever "not found" (see there); every class has the flag so
    # code holding any Bitrix24Error (a batch's list of errors) can read it.
    not_found: bool = False

    def __init__(
        self,
        status: int | None,
        error: str = "",
        description: str = "",
        *,
        method: str | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.description = description
        self.method = method
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.method}: " if self.method else ""
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        parts = [p for p in (self.error, self.description) if p]
        return f"{where}{status} {': '.join(parts)}".rstrip()

    def __reduce__(self):
        # Keeps the keyword-only method when the error crosses a process boundary (pickling).
        return (
            _rebuild,
            (type(self), self.status, self.error, self.description, self.method, self.__dict__),
        )


def _rebuild(cls, status, error, description, method, state):
    err = cls(status, error, description, method=method)
    err.__dict__.update(state)
    return err


class QueryLimitExceeded(Bitrix24Error):
    """HTTP 503 ``QUERY_LIMIT_EXCEEDED``: the portal's request bucket is full.

    The portal refused before executing anything, so repeating is always safe; slow down.
    """

    code = "bitrix24_query_limit"
    retriable = True


class OperationTimeLimit(Bitrix24Error):
    """HTTP 429 ``OPERATION_TIME_LIMIT``: this method used up its time budget on the portal.

    The block lifts at ``time.operating_reset_at``; ``retry_after`` holds the seconds until
    then when the body said so.
    """

    code = "bitrix24_operation_time_limit"
    retriable = True


class OverloadLimit(Bitrix24Error):
    """HTTP 503 ``OVERLOAD_LIMIT``: the vendor blocked REST for this portal by hand.

    Retrying does not lift it and hammering makes it worse: an operator must contact
    Bitrix24 support. So it trips the portal's circuit at once (no call leaves until a probe
    after the cool-down succeeds) and alerts; the change itself is retriable — it waits on
    the delayed path like every change refused by the open circuit, instead of being the
    one change of the outage sent to the DLQ.
    """

    code = "bitrix24_overload_limit"
    retriable = True
    alert = True


class ExpiredToken(Bitrix24Error):
    """HTTP 401 ``expired_token``: the OAuth access token expired; refresh it and repeat."""

    code = "bitrix24_expired_token"
    retriable = True


class AuthFailed(Bitrix24Error):
    """HTTP 401 ``NO_AUTH_FOUND`` / ``invalid_token`` / ``INVALID_CREDENTIALS``.

    The webhook code or token is wrong or revoked. No retry can fix it; fix the settings.
    """

    code = "bitrix24_auth_failed"
    retriable = False
    alert = True


class AccessDenied(Bitrix24Error):
    """HTTP 403 ``ACCESS_DENIED`` / 401 ``insufficient_scope`` and similar.

    The webhook user lacks a right or a scope (or the plan lacks REST). An administrator
    must grant it.
    """

    code = "bitrix24_access_denied"
    retriable = False
    alert = True


class MethodNotFound(Bitrix24Error):
    """HTTP 404 ``ERROR_METHOD_NOT_FOUND``: no such method for this portal and webhook.

    Either the code calls a wrong name or the portal lacks the module / scope. It fails
    for every record alike, so an operator is alerted.
    """

    code = "bitrix24_method_not_found"
    retriable = False
    alert = True


class InvalidRequest(Bitrix24Error):
    """HTTP 400 (and other 4xx): the portal rejected this input. Retrying it cannot help.

    Legacy CRM methods send an empty ``error``; the text then sits in ``description``.

    ``not_found`` marks the refusal of an id-addressed call (``*.update`` / ``*.get`` /
    ``*.delete``) because the portal has no object with that id — deleted by a user, or
    never there (a reset or replaced portal reissues ids): permanent for this call, but an
    action that knows the object's external key can create it again. Decided per method
    family by :func:`is_not_found`. A flag rather than a subclass: code that tells errors
    apart by their class (enrichment's tombstones, the DLQ's ``error.class``) is unchanged.
    """

    code = "bitrix24_invalid_request"
    retriable = False
    not_found = False


class ServerError(Bitrix24Error):
    """HTTP 500 ``INTERNAL_SERVER_ERROR`` and other 5xx, or an unreadable answer. Transient."""

    code = "bitrix24_server_error"
    retriable = True


class PortalDeleted(ServerError):
    """``PORTAL_DELETED``: the portal is gone or closed to the public. An operator must act."""

    code = "bitrix24_portal_deleted"
    retriable = False
    alert = True


class TransportError(Bitrix24Error):
    """No HTTP answer: timeout, connection refused or reset. The call may have executed.

    Retriable; creates rely on the look-up by external key (``xmlId``) before each add, so
    a repeated create after a lost answer does not duplicate the product.
    """

    code = "bitrix24_transport"
    retriable = True


_BY_CODE: dict[str, type[Bitrix24Error]] = {
    "QUERY_LIMIT_EXCEEDED": QueryLimitExceeded,
    "OPERATION_TIME_LIMIT": OperationTimeLimit,
    "OVERLOAD_LIMIT": OverloadLimit,
    "EXPIRED_TOKEN": ExpiredToken,
    "NO_AUTH_FOUND": AuthFailed,
    "INVALID_TOKEN": AuthFailed,
    "INVALID_CREDENTIALS": AuthFailed,
    "INVALID_GRANT": AuthFailed,
    "WRONG_CLIENT": AuthFailed,
    "ACCESS_DENIED": AccessDenied,
    "INSUFFICIENT_SCOPE": AccessDenied,
    "USER_ACCESS_ERROR": AccessDenied,
    "ALLOWED_ONLY_INTRANET_USER": AccessDenied,
    # catalog.* controllers answer missing rights with numeric codes under HTTP 400.
    "200040300010": AccessDenied,
    "200040300020": AccessDenied,  # MODIFY_PERMISSION_ACCESS_DENIED (catalog.store.update)
    "200040300030": AccessDenied,
    "200040300040": AccessDenied,
    "200040300043": AccessDenied,
    "200040300050": AccessDenied,
    "ERROR_METHOD_NOT_FOUND": MethodNotFound,
    "INTERNAL_SERVER_ERROR": ServerError,
    "ERROR_UNEXPECTED_ANSWER": ServerError,
    "PORTAL_DELETED": PortalDeleted,
}


# How each REST family says "no object with this id" (HTTP 400), as the portal answers:
# method prefix (lower case) -> (error codes, description pattern or None for "any").
# * catalog.product.*: code 0 (shared with "other errors", e.g. a section or VAT rate that
#   does not exist), so the text decides: "product does not exist." (the controller's
#   exists()), "Entity is not exists" (the REST integration base), or the Russian text
#   of the docs' error table;
# * catalog.store.*: 201100000000 (ErrorCode::STORE_ENTITY_NOT_EXISTS), whatever the text;
# * catalog.priceType.*: 201000000000 (ErrorCode::PRICE_TYPE_ENTITY_NOT_EXISTS);
# * catalog.price.*: code 0, "Price is not exists";
# * legacy crm.company|contact|deal|lead.*: an empty code and the text "Not found".
_NOT_FOUND: tuple[tuple[str, frozenset[str], re.Pattern[str] | None], ...] = (
    (
        "catalog.product.",
        frozenset({"0", ""}),
        re.compile(
            r"^(product does not exist|entity is not exists|товар с указанным идентификатором "
            r"не существует)",
            re.IGNORECASE,
        ),
    ),
    ("catalog.store.", frozenset({"201100000000"}), None),
    ("catalog.pricetype.", frozenset({"201000000000"}), None),
    (
        "catalog.price.",
        frozenset({"0", ""}),
        re.compile(r"^(price is not exists|entity is not exists)", re.IGNORECASE),
    ),
    *(
        (f"crm.{kind}.", frozenset({""}), re.compile(r"^not found\.?$", re.IGNORECASE))
        for kind in ("company", "contact", "deal", "lead")
    ),
)
# Only calls that address one object by id can say that object is gone; an add's "does not
# exist" is about something it refers to (a price's product), which recreating cannot fix.
_BY_ID = (".update", ".get", ".delete")


def is_not_found(method: str | None, status: int | None, error: str, description: str) -> bool:
    """Whether Bitrix24's answer to ``method`` says the object it addresses by id does not
    exist (module table above): per method family, by code and, where the code is shared
    with other errors, by text."""
    name = (method or "").lower()
    if status != 400 or not name.endswith(_BY_ID):
        return False
    for prefix, codes, text in _NOT_FOUND:
        if name.startswith(prefix) and name.count(".") == prefix.count("."):
            return error.upper() in codes and (text is None or bool(text.match(description)))
    return False


def _by_status(status: int) -> type[Bitrix24Error]:
    if status == 401:
        return AuthFailed
    if status == 403:
        return AccessDenied
    if status == 404:
        return MethodNotFound
    if status == 408:
        return TransportError
    if status == 429:
        return QueryLimitExceeded
    if status >= 500:
        return ServerError
    if 300 <= status < 500:
        # 3xx included: a redirect means the webhook URL points at the wrong place, which
        # repeating cannot fix (and following it could send the secret elsewhere).
        return InvalidRequest
    # A 2xx without a usable result: a proxy or maintenance page answered instead of
    # the REST API. Usually passing; if not, the retry budget ends it.
    return ServerError


def error_from_response(
    status: int,
    body: dict[str, Any] | str | None,
    *,
    method: str | None = None,
    now: float | None = None,
) -> Bitrix24Error:
    """The exception for a Bitrix24 answer with ``status`` and parsed ``body``.

    ``body`` is the decoded JSON object, the raw text when it was not JSON, or None.
    ``method`` only labels the message. ``now`` (epoch seconds, default ``time.time()``)
    turns ``time.operating_reset_at`` into ``retry_after``.
    """
    error, description = "", ""
    if isinstance(body, dict):
        raw_error = body.get("error")
        # catalog.* sends numeric codes (200040300010, 0, 100); legacy CRM sends "".
        error = "" if raw_error is None else str(raw_error).strip()
        description = str(body.get("error_description") or "").strip()
    elif isinstance(body, str):
        description = body.strip()
    if len(description) > _MAX_DESCRIPTION:
        description = description[:_MAX_DESCRIPTION] + "..."

    cls = _BY_CODE.get(error.upper()) or _by_status(status)
    err = cls(status, error, description, method=method)
    if cls is InvalidRequest and is_not_found(method, status, error, description):
        err.not_found = True
    if cls is OperationTimeLimit and isinstance(body, dict):
        err.retry_after = _seconds_until_reset(body, time.time() if now is None else now)
    return err


def _seconds_until_reset(body: dict[str, Any], now: float) -> float | None:
    timing = body.get("time")
    if not isinstance(timing, dict):
        return None
    try:
        reset_at = float(timing["operating_reset_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, reset_at - now)


__all__ = [
    "AccessDenied",
    "AuthFailed",
    "Bitrix24Error",
    "ExpiredToken",
    "InvalidRequest",
    "MethodNotFound",
    "OperationTimeLimit",
    "OverloadLimit",
    "PortalDeleted",
    "QueryLimitExceeded",
    "ServerError",
    "TransportError",
    "error_from_response",
    "is_not_found",
]
