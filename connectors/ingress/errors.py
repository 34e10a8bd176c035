"""HTTP error codes of the bridge, kept at the edge (domain errors carry no status).

Every error response has the same body::

    {"error": {"code": "<machine code>", "message": "<for humans>", "details": [...]},
     "request_id": "<X-Request-Id>"}
"""

from __future__ import annotations

from enum import Enum


class ApiError(Exception):
    """An error answered to the client; raised by routes and dependencies."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        details: list | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details or []
        self.headers = headers or {}


class ErrorKind(Enum):
    """(HTTP status, machine code) of each error the bridge answers."""

    UNAUTHENTICATED = (401, "unauthenticated")
    FORBIDDEN = (403, "forbidden")
    NOT_FOUND = (404, "not_found")
    METHOD_NOT_ALLOWED = (405, "method_not_allowed")
    INVALID_JSON = (400, "invalid_json")
    BODY_TOO_LARGE = (413, "body_too_large")
    RECORD_TOO_LARGE = (413, "record_too_large")
    FORM_TOO_LARGE = (413, "form_too_large")
    JSON_TOO_DEEP = (400, "json_too_deep")
    UNSUPPORTED_MEDIA_TYPE = (415, "unsupported_media_type")
    VALIDATION_FAILED = (422, "validation_failed")
    BATCH_TOO_LARGE = (413, "batch_too_large")
    BAD_REQUEST = (400, "bad_request")
    UNKNOWN_OBJECT = (404, "unknown_object")
    CONFLICT = (409, "conflict")
    IDEMPOTENCY_KEY_REUSED = (422, "idempotency_key_reused")
    IDEMPOTENCY_IN_PROGRESS = (409, "idempotency_in_progress")
    RATE_LIMITED = (429, "rate_limited")
    BROKER_UNAVAILABLE = (503, "broker_unavailable")
    DATABASE_UNAVAILABLE = (503, "database_unavailable")
    UNSUPPORTED_EVENT = (422, "unsupported_event")
    # Bitrix24: an event or install from a portal this deployment does not serve, a wrong
    # application token for the one it serves, an install a webhook deployment never expects.
    UNKNOWN_PORTAL = (403, "unknown_portal")
    INVALID_APPLICATION_TOKEN = (401, "invalid_application_token")
    INSTALL_NOT_EXPECTED = (409, "install_not_expected")
    TOKEN_ENDPOINT_UNAVAILABLE = (502, "token_endpoint_unavailable")
    INTERNAL = (500, "internal_error")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def code(self) -> str:
        return self.value[1]
