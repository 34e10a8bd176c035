"""Selections: every filter must match; times compare with the last failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mmstream.dlq.entry import DlqEntry, parse_time
from stages.dlq.select import Selection

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


def entry(partition=0, offset=0, key=b"p1", code="invalid_record", at=T0, ts_ms=None) -> DlqEntry:
    headers = [("ce_id", b"x"), ("dlq.error.code", code.encode())]
    if at is not None:
        headers.append(("dlq.last_failure", at.isoformat().encode()))
    return DlqEntry.build("t.dlq.normalize", partition, offset, key, b"{}", headers, ts_ms)


def test_an_empty_selection_matches_everything():
    assert Selection().empty
    assert Selection().matches(entry()) and Selection().matches(entry(key=None, at=None))


def test_reason_entity_and_coordinates_must_all_match():
    sel = Selection(reason="invalid_request", entity="p1")
    assert sel.matches(entry(code="invalid_request"))
    assert not sel.matches(entry(code="invalid_record"))
    assert not sel.matches(entry(code="invalid_request", key=b"p2"))
    assert Selection(partition=2, offset=5).matches(entry(partition=2, offset=5))
    assert not Selection(partition=2, offset=5).matches(entry(partition=1, offset=5))
    assert not Selection(partition=2, offset=5).matches(entry(partition=2, offset=6))


def test_since_is_inclusive_and_until_exclusive():
    sel = Selection(since=T0, until=T0 + timedelta(minutes=1))
    assert sel.matches(entry(at=T0))
    assert sel.matches(entry(at=T0 + timedelta(seconds=59)))
    assert not sel.matches(entry(at=T0 + timedelta(minutes=1)))
    assert not sel.matches(entry(at=T0 - timedelta(microseconds=1)))


def test_without_failure_headers_the_record_timestamp_is_the_failure_time():
    ts_ms = int((T0 + timedelta(seconds=5)).timestamp() * 1000)
    e = entry(at=None, ts_ms=ts_ms)
    assert e.failed_at == T0 + timedelta(seconds=5)
    assert Selection(since=T0).matches(e)
    assert not Selection(since=T0).matches(entry(at=None))  # no time at all: not in a window


def test_limit_stops_early_and_describe_names_the_set_filters():
    entries = [entry(offset=i) for i in range(10)]
    assert [e.offset for e in Selection().filter(entries, 3)] == [0, 1, 2]
    assert list(Selection().filter(entries, 0)) == []
    assert Selection(reason="x", since=T0).describe() == {"reason": "x", "since": T0.isoformat()}


def test_times_without_a_zone_are_utc_and_garbage_is_none():
    assert parse_time("2026-11-22T04:00:00") == T0
    assert parse_time("2026-11-22T07:00:00+03:00") == T0
    assert parse_time("2026-11-22T04:00:00Z") == T0
    assert parse_time("yesterday") is None and parse_time("") is None


def test_entity_and_code_of_records_without_key_or_headers():
    e = DlqEntry.build("t", 0, 0, None, None, None, None)
    assert e.entity == "" and e.code == "unknown" and e.failed_at is None
    assert e.source_topic == "" and e.source_partition is None
