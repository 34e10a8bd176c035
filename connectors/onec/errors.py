"""Errors of egress to 1С, and the ONE place that decides their class.

Two interfaces of a base are called: our extension's HTTP service (``…/hs/mm/``, answers
``{"error": {"code", "message", "details"}}``, http_service.openapi.yaml) and, to post
documents, the standard OData interface (answers ``{"odata.error": …}``; its reading errors
live in :mod:`connectors.onec.odata.errors` and are reused here).

:func:`error_from_response` maps an HTTP-service answer: the contract's error code decides
first, the status when the code is missing or unknown (a proxy's page, a publication
without our extension). :func:`posting_error_from_response` refines the OData mapping for
``/Post``, where 1С reports every refusal as HTTP 500 and only the text tells a lock (worth
retrying) from a refusal to post (not). Retry loops read ``retriable`` / ``retry_after``,
alerting reads ``alert``; nothing else inspects statuses or codes.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from connectors.errors import ConnectorError
from connectors.onec.odata.errors import ODataError, ODataServerError
from connectors.onec.odata.errors import error_from_response as odata_error_from_response

# Messages are kept for humans; a proxy's HTML page must not flood logs or DLQ headers.
_MAX_MESSAGE = 500


class OneCError(ConnectorError):
    """The 1С HTTP service refused or failed a call. ``status`` is None without an answer;
    ``error_code`` is the contract's code (``object_locked``…), ``details`` its details."""

    code = "onec_error"

    def __init__(
        self,
        status: int | None,
        error_code: str = "",
        message: str = "",
        *,
        operation: str | None = None,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.operation = operation
        self.details = dict(details or {})
        if retry_after is not None:
            self.retry_after = retry_after
        where = f"{operation}: " if operation else ""
        answer = f"HTTP {status}" if status is not None else "no response"
        code = f" [{error_code}]" if error_code else ""
        super().__init__(f"{where}{answer}{code} {message}".rstrip())
        self.message = message

    def __reduce__(self):
        # Keeps the keyword arguments when the error crosses a process boundary.
        return (
            _rebuild,
            (type(self), self.status, self.error_code, self.message, self.operation, self.__dict__),
        )


def _rebuild(cls, status, error_code, message, operation, state):
    err = cls(status, error_code, message, operation=operation)
    err.__dict__.update(state)
    return err


class OneCValidationFailed(OneCError):
    """HTTP 400 ``validation_failed``: 1С refused this input (``details.errors`` says what).
    Repeating it cannot help; the record goes to the DLQ, fix it and replay."""

    code = "onec_validation_failed"


class OneCAuthFailed(OneCError):
    """HTTP 401: the infobase user or password is wrong. Fix MM_ONEC__USERNAME /
    MM_ONEC__PASSWORD (or the user in 1С: Администрирование -> Пользователи)."""

    code = "onec_auth_failed"
    alert = True


class OneCForbidden(OneCError):
    """HTTP 403: the infobase user lacks the right for this operation (a role of the
    extension, or the right to post). An administrator of the base must grant it."""

    code = "onec_forbidden"
    alert = True


class OneCNotFound(OneCError):
    """HTTP 404 ``not_found``: an object the request names (the order of a delivery, the
    shipment of a return) is not in the base. Permanent for this record: check the id."""

    code = "onec_not_found"


class OneCServiceMissing(OneCError):
    """An answer that is not the service's (404 without our error body, a redirect): the
    publication lacks the extension's HTTP service or MM_ONEC__BASE_URL points elsewhere.
    Every call fails alike; an operator must fix the publication or the URL."""

    code = "onec_service_missing"
    alert = True


class OneCConflict(OneCError):
    """HTTP 409 with a code this client does not know: permanent, kept for the operator."""

    code = "onec_conflict"


class OneCIdempotencyKeyReused(OneCConflict):
    """409 ``idempotency_key_reused``: this event id already served a different request.
    A bug (two changes under one event id) or a replay with a patched body: the record goes
    to the DLQ; replay it under a new event id if the new body is meant."""

    code = "onec_idempotency_key_reused"
    alert = True


class OneCPeriodClosed(OneCConflict):
    """409 ``period_closed``: the document date is before the base's change-prohibition
    date. Permanent until an accountant moves that date; then replay from the DLQ."""

    code = "onec_period_closed"


class OneCDocumentExists(OneCConflict):
    """409 ``document_exists``: a document with the Ref_Key we asked for exists already,
    written under another event id (``details`` names it). Not retried: look it up and
    link it, or replay under the original event id."""

    code = "onec_document_exists"


class OneCObjectLocked(OneCConflict):
    """409 ``object_locked``: another 1С session holds the object (a user editing the order,
    a long posting). Transient: retry after the backoff (or ``retry_after``)."""

    code = "onec_object_locked"
    retriable = True


class OneCInProgress(OneCConflict):
    """409 ``idempotency_in_progress``: the first request with this key still runs in 1С
    (our earlier attempt timed out). Retry: the repeat gets its result."""

    code = "onec_idempotency_in_progress"
    retriable = True


class OneCBaseBusy(OneCError):
    """HTTP 503 ``base_unavailable`` / 423 ``base_locked`` / 429: the base has no free
    session, is being updated or runs in exclusive mode. Wait ``retry_after`` and retry."""

    code = "onec_base_busy"
    retriable = True


class OneCServerError(OneCError):
    """HTTP 5xx ``internal_error`` or an unreadable answer. Usually passing: retried."""

    code = "onec_server_error"
    retriable = True


class OneCTransportError(OneCError):
    """No answer: timeout, connection refused or reset. The write may have happened: the
    retry repeats it under the same Idempotency-Key, so 1С records it once."""

    code = "onec_transport"
    retriable = True


_BY_CODE: dict[str, type[OneCError]] = {
    "validation_failed": OneCValidationFailed,
    "unauthorized": OneCAuthFailed,
    "forbidden": OneCForbidden,
    "not_found": OneCNotFound,
    "idempotency_key_reused": OneCIdempotencyKeyReused,
    "idempotency_in_progress": OneCInProgress,
    "period_closed": OneCPeriodClosed,
    "document_exists": OneCDocumentExists,
    "object_locked": OneCObjectLocked,
    "base_locked": OneCBaseBusy,
    "base_unavailable": OneCBaseBusy,
    "internal_error": OneCServerError,
}


def _by_status(status: int, has_error_body: bool) -> type[OneCError]:
    if status == 401:
        return OneCAuthFailed
    if status == 403:
        return OneCForbidden
    if status == 404:
        return OneCNotFound if has_error_body else OneCServiceMissing
    if status == 409:
        return OneCConflict
    if status in (408, 423, 429, 503):
        return OneCBaseBusy
    if status >= 500:
        return OneCServerError
    if 300 <= status < 400:
        # Following a redirect would send the credentials wherever it points.
        return OneCServiceMissing
    if 400 <= status < 500:
        return OneCValidationFailed
    # A 2xx we cannot read: a proxy or maintenance page answered instead of the service.
    return OneCServerError


def error_from_response(
    status: int,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    operation: str | None = None,
    now: float | None = None,
) -> OneCError:
    """The exception for a non-success answer of the HTTP service.

    ``body`` is the decoded JSON, the raw text when it was not JSON, or None; ``headers``
    give ``Retry-After`` (seconds or an HTTP date, relative to ``now``); ``operation``
    only labels the message.
    """
    error_code, message, details, has_error_body = "", "", None, False
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        has_error_body = True
        error_code = str(err.get("code") or "").strip()
        message = str(err.get("message") or "").strip()
        details = err.get("details") if isinstance(err.get("details"), dict) else None
    elif isinstance(body, str):
        message = body.strip()
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    cls = _BY_CODE.get(error_code.lower()) or _by_status(status, has_error_body)
    retry_after = parse_retry_after((headers or {}).get("retry-after"), now)
    return cls(
        status, error_code, message, operation=operation, details=details, retry_after=retry_after
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --- posting through the standard OData interface ---------------------------------------


class ODataPostingRefused(ODataError):
    """1С refused to post the document (``/Post`` answered an error its text explains:
    not enough stock, a required field empty, the document marked for deletion). Repeating
    cannot help; fix the document in 1С or the data we sent, then replay."""

    code = "onec_odata_posting_refused"


class ODataPeriodClosed(ODataPostingRefused):
    """``/Post`` refused: the document date is before the change-prohibition date."""

    code = "onec_odata_period_closed"


class ODataObjectLocked(ODataServerError):
    """``/Post`` failed on a lock held by another session. Transient: retried."""

    code = "onec_odata_object_locked"


# 1С reports these as HTTP 500 with code -1 and the runtime message; it speaks the user's
# language, so both are listed. Checked in this order: a lock is transient even if the
# text also says the posting failed.
_LOCK_HINTS = ("заблокирован", "блокировк", "is locked", "lock conflict")
_PERIOD_HINTS = ("дата запрета", "запрета изменения", "closed period", "prohibition date")
_REFUSAL_HINTS = (
    "не удалось провести",
    "проведение невозможно",
    "нельзя провести",
    "операция не выполнена",
    "помечен на удаление",
    "failed to post",
    "cannot be posted",
    "marked for deletion",
)


def posting_error_from_response(
    status: int, body: Any, *, entity_set: str | None = None
) -> ODataError:
    """The exception for a failed ``POST …/Document_X(guid'…')/Post`` answer."""
    err = odata_error_from_response(status, body, entity_set=entity_set)
    if not isinstance(err, ODataServerError) or status < 500:
        return err
    text = str(err).casefold()
    for hints, cls in (
        (_LOCK_HINTS, ODataObjectLocked),
        (_PERIOD_HINTS, ODataPeriodClosed),
        (_REFUSAL_HINTS, ODataPostingRefused),
    ):
        if any(hint in text for hint in hints):
            refined = cls(err.status, err.odata_code, "", entity_set=entity_set)
            refined.args = err.args
            return refined
    return err


__all__ = [
    "ODataObjectLocked",
    "ODataPeriodClosed",
    "ODataPostingRefused",
    "OneCAuthFailed",
    "OneCBaseBusy",
    "OneCConflict",
    "OneCDocumentExists",
    "OneCError",
    "OneCForbidden",
    "OneCIdempotencyKeyReused",
    "OneCInProgress",
    "OneCNotFound",
    "OneCObjectLocked",
    "OneCPeriodClosed",
    "OneCServerError",
    "OneCServiceMissing",
    "OneCTransportError",
    "OneCValidationFailed",
    "error_from_response",
    "parse_retry_after",
    "posting_error_from_response",
]
