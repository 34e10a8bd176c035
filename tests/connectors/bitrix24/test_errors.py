"""error_from_response: the one transient/permanent decision for Bitrix24 answers."""

from __future__ import annotations

import pickle

import pytest

from connectors.bitrix24.errors import (
    AccessDenied,
    AuthFailed,
    Bitrix24Error,
    ExpiredToken,
    InvalidRequest,
    MethodNotFound,
    OperationTimeLimit,
    OverloadLimit,
    PortalDeleted,
    QueryLimitExceeded,
    ServerError,
    TransportError,
    error_from_response,
)
from connectors.errors import ConnectorError
from mmstream.errors import classify

# Copied from real captures (shared fixtures crm_get_batch_mix_success_and_errors.json and
# crm_contact_add_batch.json) so the tests do not depend on a path outside the repository.
REAL_BATCH_RESULT_ERROR = [
    {"error": "", "error_description": "ID is not defined or invalid."},
    {"error": "", "error_description": "Not found"},
]
REAL_TIME = {
    "start": 1729696689.134943,
    "finish": 1729696689.251536,
    "duration": 0.1165928840637207,
    "processing": 0.09575891494750977,
    "date_start": "2024-10-23T18:18:09+03:00",
    "date_finish": "2024-10-23T18:18:09+03:00",
    "operating_reset_at": 1729697289,
    "operating": 0,
}


def body(error, description=""):
    return {"error": error, "error_description": description}


CASES = [
    # status, body, class, retriable, alert
    (503, body("QUERY_LIMIT_EXCEEDED", "Too many requests"), QueryLimitExceeded, True, False),
    (
        429,
        body("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."),
        OperationTimeLimit,
        True,
        False,
    ),
    (503, body("OVERLOAD_LIMIT", "REST API is blocked due to overload"), OverloadLimit, True, True),
    (
        401,
        body("expired_token", "The access token provided has expired."),
        ExpiredToken,
        True,
        False,
    ),
    (401, body("NO_AUTH_FOUND", "Wrong authorization data"), AuthFailed, False, True),
    (401, body("invalid_token", "The access token provided is invalid."), AuthFailed, False, True),
    (401, body("INVALID_CREDENTIALS", "Invalid request credentials"), AuthFailed, False, True),
    (403, body("ACCESS_DENIED", "Access denied."), AccessDenied, False, True),
    (
        401,
        body("insufficient_scope", "The request requires higher privileges"),
        AccessDenied,
        False,
        True,
    ),
    (404, body("ERROR_METHOD_NOT_FOUND", "Method not found!"), MethodNotFound, False, True),
    (400, body(0, "Required fields: iblockId, name"), InvalidRequest, False, False),
    (400, body(100, "Could not find value for parameter {fields}"), InvalidRequest, False, False),
    (400, body("", "Not found"), InvalidRequest, False, False),
    (422, body("SOMETHING_NEW", "x"), InvalidRequest, False, False),
    (500, body("INTERNAL_SERVER_ERROR", "Internal server error"), ServerError, True, False),
    (
        500,
        body("ERROR_UNEXPECTED_ANSWER", "Server returned an unexpected response"),
        ServerError,
        True,
        False,
    ),
    (502, body("", ""), ServerError, True, False),
    (504, None, ServerError, True, False),
    (500, body("PORTAL_DELETED", "Portal was deleted"), PortalDeleted, False, True),
    # catalog.* reports missing rights as numeric codes under HTTP 400.
    (400, body(200040300010, "Access Denied"), AccessDenied, False, True),
]


@pytest.mark.parametrize("status,payload,cls,retriable,alert", CASES)
def test_status_and_code_pick_the_class(status, payload, cls, retriable, alert):
    err = error_from_response(status, payload)
    assert type(err) is cls
    assert err.retriable is retriable
    assert err.alert is alert
    assert err.status == status
    assert isinstance(err, ConnectorError)
    assert classify(err) is err


@pytest.mark.parametrize(
    "code,cls",
    [
        ("query_limit_exceeded", QueryLimitExceeded),
        ("Operation_Time_Limit", OperationTimeLimit),
        ("overload_limit", OverloadLimit),
        ("EXPIRED_TOKEN", ExpiredToken),
        ("Expired_Token", ExpiredToken),
        ("no_auth_found", AuthFailed),
        ("INVALID_TOKEN", AuthFailed),
        ("access_denied", AccessDenied),
        ("INSUFFICIENT_SCOPE", AccessDenied),
        ("error_method_not_found", MethodNotFound),
        ("internal_server_error", ServerError),
        ("portal_deleted", PortalDeleted),
    ],
)
def test_codes_compare_case_insensitively(code, cls):
    # A status that points elsewhere proves the code alone decided.
    assert type(error_from_response(418, body(code, "x"))) is cls


def test_the_code_wins_over_the_status():
    # The vendor documents OVERLOAD_LIMIT as 401 and PORTAL_DELETED as 403.
    assert type(error_from_response(401, body("OVERLOAD_LIMIT", ""))) is OverloadLimit
    deleted = error_from_response(403, body("PORTAL_DELETED", "Portal was deleted"))
    assert type(deleted) is PortalDeleted
    assert isinstance(deleted, ServerError)
    assert not deleted.retriable and deleted.alert


def test_unknown_codes_fall_back_to_the_status():
    assert type(error_from_response(401, body("SOMETHING", ""))) is AuthFailed
    assert type(error_from_response(403, body("SOMETHING", ""))) is AccessDenied
    assert type(error_from_response(404, body("SOMETHING", ""))) is MethodNotFound
    assert type(error_from_response(429, body("SOMETHING", ""))) is QueryLimitExceeded
    assert type(error_from_response(503, body("SOMETHING", ""))) is ServerError
    assert type(error_from_response(400, body("SOMETHING", ""))) is InvalidRequest


def test_legacy_crm_400_with_empty_code_keeps_the_text():
    # Per-command errors of real batch answers: empty codes, only a text.
    errors = [error_from_response(400, entry) for entry in REAL_BATCH_RESULT_ERROR]
    assert [type(e) for e in errors] == [InvalidRequest, InvalidRequest]
    assert [e.error for e in errors] == ["", ""]
    assert [e.description for e in errors] == ["ID is not defined or invalid.", "Not found"]
    assert not any(e.retriable for e in errors)
    assert "ID is not defined or invalid." in str(errors[0])


def test_text_bodies_become_the_description():
    err = error_from_response(502, "<html><body>502 Bad Gateway</body></html>")
    assert type(err) is ServerError and err.retriable
    assert "502 Bad Gateway" in err.description
    assert err.error == ""


def test_long_text_is_truncated():
    err = error_from_response(500, "x" * 10_000)
    assert len(err.description) < 600


def test_a_2xx_without_a_result_is_a_server_error():
    err = error_from_response(200, "<html>maintenance</html>")
    assert type(err) is ServerError and err.retriable


def test_a_redirect_is_permanent():
    assert type(error_from_response(302, None)) is InvalidRequest


def test_operation_time_limit_waits_until_operating_reset_at():
    # The time block of a real answer, with its operating_reset_at 600 s after the start.
    timing = REAL_TIME
    payload = {
        **body("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."),
        "time": timing,
    }
    err = error_from_response(429, payload, now=timing["start"])
    assert type(err) is OperationTimeLimit
    assert err.retry_after == pytest.approx(timing["operating_reset_at"] - timing["start"])
    assert err.retry_after == pytest.approx(599.865, abs=0.01)


def test_operation_time_limit_without_reset_time_names_no_wait():
    assert error_from_response(429, body("OPERATION_TIME_LIMIT", "")).retry_after is None
    payload = {**body("OPERATION_TIME_LIMIT", ""), "time": {"operating": 480}}
    assert error_from_response(429, payload).retry_after is None


def test_operation_time_limit_reset_in_the_past_means_no_wait():
    payload = {**body("OPERATION_TIME_LIMIT", ""), "time": {"operating_reset_at": 100}}
    assert error_from_response(429, payload, now=200.0).retry_after == 0.0


def test_other_errors_name_no_wait():
    assert error_from_response(503, body("QUERY_LIMIT_EXCEEDED", "")).retry_after is None


def test_message_names_method_status_code_and_text():
    err = error_from_response(
        503, body("QUERY_LIMIT_EXCEEDED", "Too many requests"), method="catalog.product.add"
    )
    assert str(err) == "catalog.product.add: HTTP 503 QUERY_LIMIT_EXCEEDED: Too many requests"
    assert err.method == "catalog.product.add"


def test_transport_error_has_no_status():
    err = TransportError(None, "ConnectTimeout", "no answer", method="catalog.product.list")
    assert err.retriable and not err.alert
    assert err.status is None
    assert "no response" in str(err)
    assert classify(err) is err


def test_errors_survive_pickling():
    err = error_from_response(
        429,
        {**body("OPERATION_TIME_LIMIT", "x"), "time": {"operating_reset_at": 130}},
        method="crm.product.add",
        now=100.0,
    )
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is OperationTimeLimit
    assert (copy.status, copy.error, copy.description, copy.method) == (
        429,
        "OPERATION_TIME_LIMIT",
        "x",
        "crm.product.add",
    )
    assert copy.retry_after == pytest.approx(30.0)
    assert str(copy) == str(err)


def test_every_class_has_a_distinct_machine_code():
    classes = [
        Bitrix24Error,
        QueryLimitExceeded,
        OperationTimeLimit,
        OverloadLimit,
        ExpiredToken,
        AuthFailed,
        AccessDenied,
        MethodNotFound,
        InvalidRequest,
        ServerError,
        PortalDeleted,
        TransportError,
    ]
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes)
    assert all(c.__doc__ for c in classes)
