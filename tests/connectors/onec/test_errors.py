"""The one mapping of 1С answers to error classes: HTTP service codes and statuses,
Retry-After, and the OData /Post refinements."""

from __future__ import annotations

import email.utils
import pickle

import pytest

from connectors.onec.client import circuit_verdict
from connectors.onec.errors import (
    ODataObjectLocked,
    ODataPeriodClosed,
    ODataPostingRefused,
    OneCAuthFailed,
    OneCBaseBusy,
    OneCConflict,
    OneCDocumentExists,
    OneCForbidden,
    OneCIdempotencyKeyReused,
    OneCInProgress,
    OneCNotFound,
    OneCObjectLocked,
    OneCPeriodClosed,
    OneCServerError,
    OneCServiceMissing,
    OneCTransportError,
    OneCValidationFailed,
    error_from_response,
    parse_retry_after,
    posting_error_from_response,
)
from connectors.onec.odata.errors import ODataAuthFailed, ODataNotPublished, ODataServerError
from mmstream.circuit import Verdict
from mmstream.errors import classify


def body(code: str, message: str = "текст", **details) -> dict:
    return {
        "error": {"code": code, "message": message, **({"details": details} if details else {})}
    }


@pytest.mark.parametrize(
    ("status", "code", "cls", "retriable", "alert"),
    [
        (400, "validation_failed", OneCValidationFailed, False, False),
        (401, "unauthorized", OneCAuthFailed, False, True),
        (403, "forbidden", OneCForbidden, False, True),
        (404, "not_found", OneCNotFound, False, False),
        (409, "idempotency_key_reused", OneCIdempotencyKeyReused, False, True),
        (409, "idempotency_in_progress", OneCInProgress, True, False),
        (409, "period_closed", OneCPeriodClosed, False, False),
        (409, "object_locked", OneCObjectLocked, True, False),
        (409, "document_exists", OneCDocumentExists, False, False),
        (409, "something_new", OneCConflict, False, False),
        (423, "base_locked", OneCBaseBusy, True, False),
        (503, "base_unavailable", OneCBaseBusy, True, False),
        (500, "internal_error", OneCServerError, True, False),
        # The code decides before the status: a lock reported under 500 is still a lock.
        (500, "OBJECT_LOCKED", OneCObjectLocked, True, False),
    ],
)
def test_contract_codes(status, code, cls, retriable, alert):
    err = error_from_response(status, body(code), operation="instant_order")
    assert type(err) is cls
    assert (err.retriable, err.alert, err.status) == (retriable, alert, status)
    assert classify(err) is err and err.code.startswith("onec_")
    assert str(err).startswith("instant_order: HTTP")


@pytest.mark.parametrize(
    ("status", "answer", "cls"),
    [
        (404, "<html>Not found</html>", OneCServiceMissing),  # no extension in the publication
        (404, None, OneCServiceMissing),
        (302, "", OneCServiceMissing),
        (400, "bad", OneCValidationFailed),
        (401, None, OneCAuthFailed),
        (408, None, OneCBaseBusy),
        (429, None, OneCBaseBusy),
        (502, "<html>Bad gateway</html>", OneCServerError),
        (200, "<html>maintenance</html>", OneCServerError),
    ],
)
def test_statuses_decide_without_a_contract_body(status, answer, cls):
    assert type(error_from_response(status, answer)) is cls


def test_retry_after_in_seconds_or_as_a_date_and_messages_are_capped():
    busy = error_from_response(503, body("base_unavailable"), headers={"retry-after": "7"})
    assert busy.retry_after == 7.0
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(30)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0
    assert error_from_response(409, body("object_locked")).retry_after is None
    assert len(str(error_from_response(500, "x" * 5000))) < 600


def test_details_survive_and_errors_pickle():
    err = error_from_response(
        400,
        body("validation_failed", errors=[{"field": "lines", "problem": "empty"}]),
        operation="returns",
        headers={"retry-after": "3"},
    )
    assert err.details == {"errors": [{"field": "lines", "problem": "empty"}]}
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is OneCValidationFailed and again.details == err.details
    assert str(again) == str(err) and again.retry_after == 3.0 and again.operation == "returns"


@pytest.mark.parametrize(
    ("status", "message", "cls", "retriable"),
    [
        (
            500,
            "Ошибка при вызове метода контекста (Записать): Ошибка блокировки объекта. Объект уже заблокирован",
            ODataObjectLocked,
            True,
        ),
        (
            500,
            "Не удалось провести документ. Дата запрета изменения: 01.01.2025",
            ODataPeriodClosed,
            False,
        ),
        (
            500,
            'Не удалось провести "Реализация товаров ММ00-000001": недостаточно товара',
            ODataPostingRefused,
            False,
        ),
        (500, "Failed to post the document", ODataPostingRefused, False),
        (500, "Произошла внутренняя ошибка OData сервиса", ODataServerError, True),
        (404, "Не найден объект", ODataNotPublished, False),
        (401, "", ODataAuthFailed, False),
    ],
)
def test_posting_errors(status, message, cls, retriable):
    answer = {"odata.error": {"code": "-1", "message": {"lang": "ru", "value": message}}}
    err = posting_error_from_response(status, answer, entity_set="Document_РеализацияТоваровУслуг")
    assert type(err) is cls and err.retriable is retriable
    assert message[:20] in str(err) and "Document_РеализацияТоваровУслуг" in str(err)


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (None, Verdict.SUCCESS),
        (OneCBaseBusy(503), Verdict.FAILURE),
        (OneCServerError(500), Verdict.FAILURE),
        (OneCTransportError(None), Verdict.FAILURE),
        (ODataServerError(500), Verdict.FAILURE),
        (OneCObjectLocked(409), Verdict.NEUTRAL),  # one object, not the base
        (OneCInProgress(409), Verdict.NEUTRAL),
        (OneCValidationFailed(400), Verdict.SUCCESS),  # the base answered
        (ODataPostingRefused(500), Verdict.SUCCESS),
        (RuntimeError("our bug"), Verdict.NEUTRAL),
    ],
)
def test_circuit_verdicts(exc, verdict):
    assert circuit_verdict(exc) is verdict
