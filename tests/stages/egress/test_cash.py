"""Cash operations (flow 4): which 1С cash documents the middleware posts, and when a posting
(or a refusal) is an SLA deviation. Pure: the OData call is tested with the 1С client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stages.egress.cash import deviation, document_time, needs_posting

MSK = ZoneInfo("Europe/Moscow")
REF = "9a8b7c6d-1111-11ef-8a6b-000c29b45b09"
EMPLOYEE = "4c3b2a19-2222-11ef-8a6b-000c29b45b09"
SLA = 900.0


def receipt(**fields) -> dict:
    """A canonical ПКО as 1С pushed it: unposted, dated in the base's wall clock."""
    return {
        "id": REF,
        "source": "onec",
        "version": "AAAADAAAAAA=",
        "number": "ПКО-000045",
        "date": "2024-06-03T12:00:00",
        "posted": False,
        "deleted": False,
        "amount": "1500.50",
        "employee_id": EMPLOYEE,
        **fields,
    }


# -- what is posted -----------------------------------------------------------------------


def test_an_unposted_1c_document_needs_posting():
    assert needs_posting(receipt()) is True


@pytest.mark.parametrize(
    "fields",
    [
        {"source": "bitrix24"},
        {"source": "middleware"},
        {"source": None},
        {"posted": True},
        {"deleted": True},
        {"date": None},
        {"date": ""},
    ],
)
def test_posted_deleted_undated_or_foreign_documents_are_left_alone(fields):
    assert needs_posting(receipt(**fields)) is False


# -- document time ------------------------------------------------------------------------


def test_a_zone_less_date_is_the_base_wall_clock():
    assert document_time(receipt(), MSK) == datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def test_a_date_with_an_offset_keeps_it():
    moment = document_time(receipt(date="2024-06-03T12:00:00+05:00"), MSK)
    assert moment == datetime(2024, 6, 3, 7, 0, tzinfo=UTC)


# -- deviations ---------------------------------------------------------------------------


def at(seconds: float) -> datetime:
    """``seconds`` after the receipt's date."""
    return datetime(2024, 6, 3, 9, 0, tzinfo=UTC) + timedelta(seconds=seconds)


@pytest.mark.parametrize("seconds", [0, 10, SLA])
def test_a_document_posted_within_the_sla_is_no_deviation(seconds):
    assert (
        deviation(receipt(), "cash_receipt", outcome="posted", at=at(seconds), sla_s=SLA, tz=MSK)
        is None
    )


def test_a_document_posted_late_is_a_deviation_saying_by_how_much():
    event = deviation(
        receipt(), "cash_receipt", outcome="posted", at=at(SLA + 61.25), sla_s=SLA, tz=MSK
    )
    assert event == {
        "entity": "cash_receipt",
        "id": REF,
        "number": "ПКО-000045",
        "date": "2024-06-03T12:00:00+03:00",
        "outcome": "posted",
        "at": "2024-06-03T09:16:01.250000+00:00",
        "sla_s": SLA,
        "late_by_s": 61.25,
        "amount": "1500.50",
        "employee_id": EMPLOYEE,
    }


def test_a_refused_document_is_a_deviation_even_in_time():
    # It will not be posted at all, so in time or not it is reported at once.
    event = deviation(
        receipt(number=None), "cash_expense", outcome="refused", at=at(5), sla_s=SLA, tz=MSK
    )
    assert event is not None
    assert event["outcome"] == "refused" and event["late_by_s"] == 0
    assert event["entity"] == "cash_expense" and event["number"] == ""


def test_a_refused_late_document_says_how_late():
    event = deviation(
        receipt(), "advance_report", outcome="refused", at=at(SLA * 2), sla_s=SLA, tz=MSK
    )
    assert event["late_by_s"] == SLA
