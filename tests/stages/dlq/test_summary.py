"""Counts of a DLQ by reason (stage, code) and entity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mmstream.dlq.entry import DlqEntry
from stages.dlq.summary import summarize

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


def entry(key: str, stage: str, code: str, minutes: int, message: str = "boom") -> DlqEntry:
    headers = [
        ("dlq.stage", stage.encode()),
        ("dlq.error.code", code.encode()),
        ("dlq.error.class", b"InvalidRequest"),
        ("dlq.error.message", message.encode()),
        ("dlq.last_failure", (T0 + timedelta(minutes=minutes)).isoformat().encode()),
    ]
    return DlqEntry.build("t.dlq", 0, minutes, key.encode(), b"{}", headers, None)


def test_counts_by_reason_with_distinct_entities_and_time_span():
    s = summarize(
        "t.dlq",
        [
            entry("p1", "egress", "invalid_request", 3, "first"),
            entry("p1", "egress", "invalid_request", 1, "Field NAME is required"),
            entry("p2", "egress", "invalid_request", 2),
            entry("p3", "egress", "overload", 5, "x" * 500),
        ],
        top=1,
    )
    assert s.records == 4 and s.distinct_entities == 3
    assert (s.oldest, s.newest) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=5))
    first, second = s.reasons
    assert (first.stage, first.code, first.count, first.entities) == (
        "egress",
        "invalid_request",
        3,
        2,
    )
    assert first.error_class == "InvalidRequest"
    assert (second.code, second.count, second.entities) == ("overload", 1, 1)
    assert len(second.example) == 120
    assert s.entities == [("p1", 2)]
    d = s.as_dict()
    assert d["by_reason"][0]["count"] == 3 and d["top_entities"] == [{"entity": "p1", "count": 2}]
    assert d["oldest_failure"] == (T0 + timedelta(minutes=1)).isoformat()


def test_an_empty_dlq_summarizes_to_zero():
    s = summarize("t.dlq", [])
    assert s.records == 0 and s.reasons == [] and s.oldest is None
    assert s.as_dict()["newest_failure"] is None
