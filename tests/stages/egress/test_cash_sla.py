"""The cash SLA watch's decision (stages/egress/cash_sla.py): which cash documents are past
their SLA and unposted, in which state, given the time, the SLA and what the egress knows.
Pure; the watch against PostgreSQL and the broker is in test_cash_sla_watch.py."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from stages.egress.cash import deviation
from stages.egress.cash_sla import STATES, CashRow, overdue, state_of, watch_event

SLA = 900.0
DATED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EVENT = "5f0e8d7c-3333-11ef-8a6b-000c29b45b09"
SCHEMA = Path(__file__).resolve().parents[3] / "avro" / "cash_sla_event.avsc"


def row(**fields) -> CashRow:
    """A ПКО 1С pushed unposted at DATED, whose change the egress has not delivered yet."""
    base = CashRow(
        entity="cash_receipt",
        id="9a8b7c6d-1111-11ef-8a6b-000c29b45b09",
        number="ПКО-000045",
        date=DATED,
        posted=False,
        deleted=False,
        source="onec",
        event_id=EVENT,
        amount=Decimal("1500.50"),
        employee_id="4c3b2a19-2222-11ef-8a6b-000c29b45b09",
        changed_at=DATED,
    )
    return replace(base, **fields)


def after(seconds: float) -> datetime:
    return DATED + timedelta(seconds=seconds)


# -- past the SLA or not -------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 10, SLA])
def test_within_the_sla_nothing_is_raised(seconds):
    assert state_of(row(), after(seconds), SLA) is None


def test_one_second_past_the_sla_an_undelivered_document_is_lagging():
    assert state_of(row(), after(SLA + 1), SLA) == "lagging"


@pytest.mark.parametrize(
    "fields",
    [
        {"posted": True},
        {"deleted": True},
        {"source": "bitrix24"},
        {"date": None},
        # The egress delivered its current change and posted it: 1С's echo is still to come.
        {"delivered_event_id": EVENT, "posted_by_egress": True},
    ],
)
def test_posted_deleted_foreign_or_undated_documents_are_not_raised(fields):
    assert state_of(row(**fields), after(SLA * 10), SLA) is None


# -- the state it is raised in -------------------------------------------------------------


def test_a_parked_document_is_parked_even_when_an_earlier_change_was_posted():
    # Posted before (external id kept), then a newer change of it failed and waits parked.
    found = row(parked=True, delivered_event_id="older", posted_by_egress=True)
    assert state_of(found, after(SLA + 60), SLA) == "parked"


def test_a_document_whose_current_change_was_delivered_but_not_posted_is_unposted():
    # Posting off, or the egress had nothing to do with it: 1С still holds it unposted.
    assert state_of(row(delivered_event_id=EVENT), after(SLA + 60), SLA) == "unposted"


def test_a_document_changed_since_its_last_delivery_is_lagging():
    # Posted once by the egress; 1С pushed a newer, unposted version not delivered yet.
    found = row(delivered_event_id="older", posted_by_egress=True)
    assert state_of(found, after(SLA + 60), SLA) == "lagging"


def test_a_late_document_that_just_arrived_is_left_to_the_posting_for_the_grace():
    fresh = row(changed_at=after(SLA * 4))
    assert state_of(fresh, after(SLA * 4 + 30), SLA, lagging_grace_s=60) is None
    assert state_of(fresh, after(SLA * 4 + 61), SLA, lagging_grace_s=60) == "lagging"
    # Parked or delivered-but-unposted documents are not waiting for the posting: no grace.
    assert (
        state_of(replace(fresh, parked=True), after(SLA * 4 + 1), SLA, lagging_grace_s=60)
        == "parked"
    )


def test_overdue_picks_the_documents_to_raise_oldest_first():
    rows = [
        row(id="c", date=after(-100)),
        row(id="ok", date=after(SLA)),
        row(id="a", date=after(-300), parked=True),
        row(id="done", posted=True),
        row(id="b", date=after(-200), delivered_event_id=EVENT),
    ]
    found = overdue(rows, after(SLA + 1), SLA)
    assert [(r.id, state) for r, state in found] == [
        ("a", "parked"),
        ("b", "unposted"),
        ("c", "lagging"),
    ]


# -- the event ------------------------------------------------------------------------------


def test_the_watch_event_has_the_postings_shape_and_says_how_late():
    event = watch_event(row(), "parked", after(SLA + 61.25), SLA)
    assert event == {
        "entity": "cash_receipt",
        "id": row().id,
        "number": "ПКО-000045",
        "date": "2026-12-07T09:00:00+00:00",
        "outcome": "parked",
        "at": "2026-12-07T09:16:01.250000+00:00",
        "sla_s": SLA,
        "late_by_s": 61.25,
        "amount": "1500.50",
        "employee_id": row().employee_id,
    }
    posted = deviation(
        {
            "id": row().id,
            "number": "ПКО-000045",
            "date": DATED.isoformat(),
            "amount": 1500.5,
            "employee_id": None,
        },
        "cash_receipt",
        outcome="posted",
        at=after(SLA + 1),
        sla_s=SLA,
        tz=UTC,
    )
    assert set(posted) == set(event)


def _validate(event: dict) -> None:
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text("utf-8")))
    fastavro.validation.validate(event, schema, raise_errors=True)


@pytest.mark.parametrize("state", STATES)
def test_every_watch_event_matches_the_committed_schema(state):
    _validate(
        watch_event(row(amount=None, employee_id=None, number=""), state, after(SLA * 3), SLA)
    )
    _validate(watch_event(row(), state, after(SLA * 3), SLA))


@pytest.mark.parametrize("outcome", ["posted", "refused"])
def test_every_posting_event_matches_the_committed_schema(outcome):
    payload = {
        "id": row().id,
        "number": None,
        "date": "2026-12-07T09:00:00",
        "amount": 1500.5,
        "employee_id": None,
    }
    event = deviation(
        payload, "advance_report", outcome=outcome, at=after(SLA * 2), sla_s=SLA, tz=UTC
    )
    assert event is not None and event["amount"] == "1500.5"
    _validate(event)


def test_the_schema_names_every_outcome():
    symbols = json.loads(SCHEMA.read_text("utf-8"))
    outcome = next(f for f in symbols["fields"] if f["name"] == "outcome")
    assert set(outcome["type"]["symbols"]) == {"posted", "refused", *STATES}


def test_the_topic_catalog_documents_the_event_and_every_field():
    from scripts.gen_topic_catalog import render

    text = render()
    section = text.split("### events.cash_sla", 1)[1]
    fields = [f["name"] for f in json.loads(SCHEMA.read_text("utf-8"))["fields"]]
    assert "`avro/cash_sla_event.avsc`" in section
    assert all(f"| `{name}` |" in section for name in fields)
