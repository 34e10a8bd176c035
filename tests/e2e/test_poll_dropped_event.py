"""Lossless by default (issue 14, item 3), end to end on the real broker, PostgreSQL, bridge,
enrichment and entity sink with the Bitrix24 emulator.

Bitrix24 sends each event once and never again: a change whose event is lost on the way
(the bridge down, a network error) is found by the ``DATE_MODIFY`` cursor poller — now on
by default — within one interval, and stored once: one row, one revision per version."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import INSTANT
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

INTERVAL_S = 2.0


def test_a_change_whose_event_is_dropped_arrives_within_one_poll_interval_once(stack):
    assert stack.settings.bitrix24.poll_enabled  # the default, not switched on here
    stack.configure(poll_interval_s=INTERVAL_S)
    stack.start_emulator()
    stack.start_entity_sink()
    stack.start_bridge()
    stack.start_enrich()

    # A courier's deal arrives the usual way: its event is posted.
    deal = int(
        stack.rest(
            "crm.deal.add",
            {
                "fields": {
                    "TITLE": "Продажа v1",
                    "CATEGORY_ID": INSTANT,
                    "STAGE_ID": f"C{INSTANT}:NEW",
                    "OPPORTUNITY": "700.00",
                    "CURRENCY_ID": "RUB",
                    "ASSIGNED_BY_ID": 1,
                }
            },
        )
    )
    stack.post_event("ONCRMDEALADD", deal)
    stack.wait_sql(
        "SELECT title, revision FROM instant_order", lambda r: r == [("Продажа v1", 1)], 60
    )
    # The poller has listed it (its cursor stands at the deal's version).
    stack.wait_sql(
        "SELECT seen_ids FROM bitrix24_poll_cursor WHERE entity = 'deal'",
        lambda r: r == [([str(deal)],)],
        30,
    )

    # The courier edits the deal; the portal's event never reaches the bridge.
    time.sleep(1.0)  # DATE_MODIFY has one-second resolution: the edit is a later version
    stack.rest("crm.deal.update", {"id": deal, "fields": {"TITLE": "Продажа v2"}})
    changed = time.monotonic()
    stack.wait_sql(
        "SELECT title, revision FROM instant_order", lambda r: r == [("Продажа v2", 2)], 30
    )
    elapsed = time.monotonic() - changed
    # One interval, plus the enrichment's fetch and the sink's batch.
    assert elapsed < INTERVAL_S + 5, elapsed

    # Further cycles list nothing new: one record per version, no third revision.
    time.sleep(2 * INTERVAL_S)
    records = [
        m
        for m in count_records(stack.settings, "raw.bitrix24.deal", 2, timeout_s=10)
        if m.key().decode() == f"deal:{deal}"
    ]
    assert len(records) == 2
    assert stack.sql("SELECT count(*), max(revision) FROM instant_order") == [(1, 2)]
    assert "bitrix24 cursor poller on" in stack.procs["enrich"].log_path.read_text(
        "utf-8", errors="replace"
    )
