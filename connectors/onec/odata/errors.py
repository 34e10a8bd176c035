"""Errors of the 1С OData interface, and the ONE place that decides transient vs permanent.

1С answers errors as ``{"odata.error": {"code", "message": {"lang", "value"}}}``; the HTTP
status decides the class (1С's numeric codes are not documented as stable), the code and
text are kept for the operator. The poller's loop reads ``retriable`` and ``alert`` only.
"""

from __future__ import annotations

from typing import Any

from connectors.errors import ConnectorError

_MAX_MESSAGE = 500


class ODataError(ConnectorError):
    """1С's OData interface refused or failed a request. ``status`` is None without an answer."""

    code = "onec_odata_error"

    def __init__(
        self,
        status: int | None,
        odata_code: str = "",
        message: str = "",
        *,
        entity_set: str | None = None,
    ) -> None:
        self.status = status
        self.odata_code = odata_code
        self.entity_set = entity_set
        where = f"{entity_set}: " if entity_set else ""
        answer = f"HTTP {status}" if status is not None else "no response"
        code = f" [{odata_code}]" if odata_code else ""
        super().__init__(f"{where}{answer}{code} {message}".rstrip())


class ODataAuthFailed(ODataError):
    """HTTP 401/403: the OData user or password is wrong, or the user lacks the right to
    read this object. Fix MM_ODATA__USERNAME / __PASSWORD or the user's rights in 1С."""

    code = "onec_odata_auth_failed"
    alert = True


class ODataNotPublished(ODataError):
    """HTTP 404: the entity set is not published. In 1С, add the object to the standard
    OData interface (Администрирование -> Настройка стандартного интерфейса OData)."""

    code = "onec_odata_not_published"
    alert = True


class ODataBadRequest(ODataError):
    """HTTP 400 and other 4xx: 1С refused the query (a field or option it does not know).
    Repeating it cannot help; check the entity set's fields against ``$metadata``."""

    code = "onec_odata_bad_request"
    alert = True


class ODataServerError(ODataError):
    """HTTP 5xx, or an answer that is not an OData JSON document (a proxy's page, a base
    being updated). Usually passing: the next scan retries."""

    code = "onec_odata_server_error"
    retriable = True


class ODataTransportError(ODataError):
    """No answer: timeout, connection refused or reset. The next scan retries."""

    code = "onec_odata_transport"
    retriable = True


def error_from_response(status: int, body: Any, *, entity_set: str | None = None) -> ODataError:
    """The exception for a non-2xx answer with the parsed JSON ``body`` (or its text)."""
    odata_code, message = "", ""
    if isinstance(body, dict) and isinstance(body.get("odata.error"), dict):
        err = body["odata.error"]
        odata_code = str(err.get("code") or "")
        msg = err.get("message")
        message = str(msg.get("value") or "") if isinstance(msg, dict) else str(msg or "")
    elif isinstance(body, str):
        message = body.strip()
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    if status in (401, 403):
        cls: type[ODataError] = ODataAuthFailed
    elif status == 404:
        cls = ODataNotPublished
    elif status >= 500 or status in (408, 429):
        cls = ODataServerError
    elif status >= 400:
        cls = ODataBadRequest
    else:
        cls = ODataServerError
    return cls(status, odata_code, message, entity_set=entity_set)
