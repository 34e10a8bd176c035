"""Pure parts of the trace: traceparent derivation, masking, attempts, timeline assembly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mmstream import log as logctx
from mmstream.trace.context import (
    batch_scope,
    outbound_headers,
    trace_id_of,
    traceparent,
    valid_traceparent,
)
from mmstream.trace.masking import MASK, mask_body, mask_target_url, mask_text
from mmstream.trace.timeline import Found, assemble, dlq_matches, replays_of, with_attempts

EVENT = "0b6f3c3e-8a0a-5d1e-9a59-6d3c1f0e2a11"


def test_traceparent_is_deterministic_per_event_and_valid():
    first = traceparent(EVENT, "req-1")
    assert first == traceparent(EVENT, "req-2")  # the event decides, not the request
    assert valid_traceparent(first)
    version, trace_id, span_id, flags = first.split("-")
    assert (version, flags) == ("00", "01") and trace_id == trace_id_of(EVENT)
    assert traceparent("another-event")[3:35] != trace_id
    # No event: the request id seeds it; neither: a random (still valid) one.
    assert traceparent("", "req-1") == traceparent("", "req-1") != traceparent("", "req-2")
    assert valid_traceparent(traceparent("", "")) and traceparent("", "") != traceparent("", "")


def test_an_upstream_trace_keeps_its_trace_id_and_invalid_ones_are_ignored():
    upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    mine = traceparent(EVENT, "", upstream)
    assert mine.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert mine.split("-")[2] != "00f067aa0ba902b7"
    for bad in (
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ):
        assert not valid_traceparent(bad)
        assert traceparent(EVENT, "", bad).split("-")[1] == trace_id_of(EVENT)


def test_outbound_headers_follow_the_log_context_and_a_batch_scope():
    assert "X-Request-Id" not in outbound_headers()
    with logctx.bind(event_id=EVENT, request_id="req-1"):
        headers = outbound_headers()
        assert headers == {"traceparent": traceparent(EVENT, "req-1"), "X-Request-Id": "req-1"}
        with batch_scope(["e1", "e2", "e1"], ["r1", "", "r2"]):
            inside = outbound_headers()
        assert inside["X-Request-Id"] == "r1,r2"
        assert inside["traceparent"] == traceparent("e1,e2", "r1,r2")
        assert outbound_headers() == headers


def test_masking_removes_every_secret_and_keeps_the_rest():
    body = json.dumps(
        {
            "fields": {"NAME": "Мойка", "xmlId": "g"},
            "auth": "tok123",
            "nested": [{"password": "p", "refresh_token": "r"}],
        },
        ensure_ascii=False,
    )
    masked = mask_body(body, "application/json")
    assert "tok123" not in masked and '"p"' not in masked and '"r"' not in masked
    assert json.loads(masked) == {
        "fields": {"NAME": "Мойка", "xmlId": "g"},
        "auth": MASK,
        "nested": [{"password": MASK, "refresh_token": MASK}],
    }
    form = mask_body(
        "fields[NAME]=x&auth=tok123&client_secret=s", "application/x-www-form-urlencoded"
    )
    assert form == f"fields[NAME]=x&auth={MASK}&client_secret={MASK}"
    # Cut or non-JSON text is masked by pattern.
    assert "abc" not in mask_text('{"access_token": "abc", "x": 1') and "bypass=1" in mask_text(
        "bypass=1"
    )
    assert mask_body("x" * 50, limit=10) == "x" * 10 + "…"
    assert mask_body(b"", "application/json") == ""


def test_urls_lose_webhook_codes_passwords_and_token_parameters():
    assert (
        mask_target_url("https://p.bitrix24.ru/rest/1/s3cr3tcode/catalog.product.add.json")
        == f"https://p.bitrix24.ru/rest/1/{MASK}/catalog.product.add.json"
    )
    token = mask_target_url(
        "https://oauth.bitrix.info/oauth/token/?grant_type=refresh_token"
        "&client_secret=cs&refresh_token=rt"
    )
    assert "cs" not in token.split("?")[1].replace("client_secret", "") and "=rt" not in token
    assert "pw" not in mask_target_url("http://user:pw@1c.local/trade/hs/mm/ping")


def test_attempts_count_calls_of_one_event_operation_and_target():
    calls = [
        {"id": 3, "event_id": "e", "target": "bitrix24", "operation": "catalog.product.add"},
        {"id": 1, "event_id": "e", "target": "bitrix24", "operation": "catalog.product.add"},
        {"id": 2, "event_id": "e", "target": "bitrix24", "operation": "catalog.product.list"},
        {"id": 4, "event_id": "", "target": "bitrix24", "operation": "catalog.product.add"},
        {"id": 5, "event_id": "", "target": "bitrix24", "operation": "catalog.product.add"},
    ]
    assert [(c["id"], c["attempt"]) for c in with_attempts(calls)] == [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 1),
        (5, 1),
    ]


def test_replays_are_matched_by_dlq_topic_partition_and_offset():
    entry = {"topic": "dlq.egress", "partition": 1, "offset": 7}
    hit = {"id": 1, "target": "dlq.egress", "details": {"before": {"offsets": {"1": [[5, 9]]}}}}
    other_partition = {
        "id": 2,
        "target": "dlq.egress",
        "details": {"before": {"offsets": {"0": [[5, 9]]}}},
    }
    other_topic = {
        "id": 3,
        "target": "dlq.sink",
        "details": {"before": {"offsets": {"1": [[7, 7]]}}},
    }
    before = {
        "id": 4,
        "target": "dlq.egress",
        "details": {"before": {"offsets": {"1": [[0, 6], [8, 9]]}}},
    }
    assert replays_of(entry, [hit, other_partition, other_topic, before]) == [hit]


class _Entry:
    def __init__(self, key, headers):
        self.entity, self.headers = key, headers


def test_dlq_records_match_by_key_event_or_request_id():
    assert dlq_matches(_Entry("p1", []), {"p1"}, set(), set())
    assert dlq_matches(_Entry("x", [("ce_id", b"e1")]), set(), {"e1"}, set())
    assert dlq_matches(_Entry("x", [("X-Request-Id", b"r1")]), set(), set(), {"r1"})
    assert not dlq_matches(_Entry("x", [("ce_id", b"e2")]), {"p1"}, {"e1"}, {"r1"})


def test_assembly_orders_every_source_and_tells_merged_from_skipped_versions():
    t0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    found = Found(
        crosswalk=[
            {"system": "bitrix24", "entity": "product", "canonical_id": "p1", "external_id": "42"}
        ],
        exchange=[
            {
                "principal": "onec",
                "node": "ЦБ",
                "message_no": 5,
                "object": "Catalog_Номенклатура",
                "response": {"request_id": "r1"},
                "received_at": t0,
            }
        ],
        versions=[
            {
                "entity": "product",
                "source_id": "p1",
                "version": "v2",
                "seen_at": t0 + timedelta(seconds=1),
            },
            {
                "entity": "product",
                "source_id": "p1",
                "version": "v1",
                "seen_at": t0 + timedelta(seconds=2),
            },
        ],
        outbox=[
            {
                "id": 9,
                "event_id": "e2",
                "entity": "product",
                "entity_id": "p1",
                "change": "upsert",
                "version": "v2",
                "headers": {"x-request-id": "r1"},
                "created_at": t0 + timedelta(seconds=1),
                "published_at": t0 + timedelta(seconds=3),
            }
        ],
        calls=[
            {
                "id": 2,
                "at": t0 + timedelta(seconds=5),
                "target": "bitrix24",
                "operation": "catalog.product.add",
                "http_method": "POST",
                "url": "u",
                "event_id": "e2",
                "request_id": "r1",
                "traceparent": "t",
                "request": "{}",
                "status": 200,
                "error": "",
                "response": "{}",
                "latency_ms": 12.0,
            },
            {
                "id": 1,
                "at": t0 + timedelta(seconds=4),
                "target": "bitrix24",
                "operation": "catalog.product.add",
                "http_method": "POST",
                "url": "u",
                "event_id": "e2",
                "request_id": "r1",
                "traceparent": "t",
                "request": "{}",
                "status": None,
                "error": "ReadTimeout",
                "response": "",
                "latency_ms": 5000.0,
            },
        ],
        dlq=[{"topic": "dlq.egress", "partition": 0, "offset": 3, "code": "x", "failed_at": None}],
    )
    timeline = assemble(
        "42", found, entity_ids={"p1"}, event_ids={"e2"}, request_ids={"r1"}
    ).as_dict()
    kinds = [s["kind"] for s in timeline["steps"]]
    assert kinds == ["ingress", "version", "outbox", "version", "egress", "egress", "dlq"]
    versions = [s for s in timeline["steps"] if s["kind"] == "version"]
    assert [s["details"]["merged"] for s in versions] == [True, False]
    egress = [s["details"] for s in timeline["steps"] if s["kind"] == "egress"]
    assert [(e["attempt"], e["status"], e["error"]) for e in egress] == [
        (1, None, "ReadTimeout"),
        (2, 200, ""),
    ]
    assert {e["entity"] for e in egress} == {"product p1"}
    assert timeline["trace_ids"] == {"e2": trace_id_of("e2")}
    assert timeline["external_ids"][0]["external_id"] == "42"


def test_the_table_lists_the_ids_then_one_line_per_step():
    from mmstream.cli.trace import render_table

    t0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    found = Found(
        outbox=[
            {
                "id": 1,
                "event_id": "e1",
                "entity": "product",
                "entity_id": "p1",
                "change": "upsert",
                "version": "v1",
                "headers": [["x-request-id", "r1"]],
                "created_at": t0,
                "published_at": None,
            }
        ]
    )
    table = render_table(
        assemble("p1", found, entity_ids={"p1"}, event_ids={"e1"}, request_ids={"r1"}).as_dict()
    )
    lines = table.splitlines()
    assert lines[:4] == ["trace p1", "  entity ids:  p1", "  event ids:   e1", "  request ids: r1"]
    assert lines[4].startswith("2026-12-01T10:00:00+00:00") and "outbox" in lines[4]
    assert "not yet published" in lines[4]
    empty = render_table(assemble("x", Found()).as_dict())
    assert empty.splitlines()[-1].startswith("nothing recorded")
