"""One product change traced end to end on the real broker, PostgreSQL and processes:
1С POST (X-Request-Id, Idempotency-Key) -> bridge -> sink (outbox) -> egress -> Bitrix24,
with the request id and a traceparent at the portal, every egress attempt in the
integration log, and ``mmctl trace`` showing the whole timeline from the 1С GUID and from
the Bitrix24 id."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from mmstream.trace.context import trace_id_of
from tests.support.stack import onec_product, wait_for

pytestmark = pytest.mark.e2e


def _mmctl_trace(pipeline, ident: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "mmstream.cli.main", "trace", ident, "--no-dlq", "-o", "json"],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_one_product_change_is_traced_from_ingress_to_bitrix24(pipeline):
    pipeline.start_all()
    record = onec_product(Description="Трассируемая мойка")
    request_id = uuid.uuid4().hex
    resp = pipeline.post_product(
        record, headers={"X-Request-Id": request_id, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["x-request-id"] == request_id

    # The portal got the change with the ingress request's id and the event's trace.
    def carried():
        return [
            c
            for c in pipeline.emulator_calls()
            if request_id in (c.get("request_id") or "").split(",")
        ]

    calls = wait_for(pipeline, "a Bitrix24 call carrying the request id", carried, 90)
    [(event,)] = pipeline.sql(
        "SELECT event_id::text FROM outbox WHERE entity_id = %s", record["Ref_Key"]
    )
    # Only this change is in flight: every request it caused carries its trace alone.
    assert all(
        c["request_id"] == request_id and c["traceparent"].split("-")[1] == trace_id_of(event)
        for c in calls
    ), calls

    # Every attempt is in the integration log (written off the hot path: wait for it).
    rows = pipeline.wait_sql(
        "SELECT operation, status, traceparent, url FROM integration_log WHERE event_id = %s",
        lambda r: any(
            op.startswith("catalog.product.") and status == 200 for op, status, _, _ in r
        ),
        60,
        event,
    )
    assert all(tp.split("-")[1] == trace_id_of(event) for _, _, tp, _ in rows)
    assert all(
        pipeline.settings.bitrix24.webhook_url.get_secret_value().rstrip("/").rsplit("/", 1)[-1]
        not in url
        for _, _, _, url in rows
    )

    by_guid = _mmctl_trace(pipeline, record["Ref_Key"])
    kinds = {s["kind"] for s in by_guid["steps"]}
    assert {"ingress", "version", "outbox", "egress", "delivered"} <= kinds, by_guid
    assert by_guid["request_ids"] == [request_id] and event in by_guid["event_ids"]
    [bitrix_id] = [x["external_id"] for x in by_guid["external_ids"] if x["system"] == "bitrix24"]
    by_bitrix = _mmctl_trace(pipeline, bitrix_id)
    assert by_bitrix["entity_ids"] == [record["Ref_Key"]]
    assert [s["kind"] for s in by_bitrix["steps"]] == [s["kind"] for s in by_guid["steps"]]


def test_an_upstream_traceparent_is_continued_by_the_egress_calls(pipeline):
    """1С (or a proxy in front of it) sends a W3C traceparent: the raw record keeps it, and
    the calls made for the change carry the same trace id with our span as the parent; the
    integration log shows it and ``mmctl trace <trace id>`` finds the change."""
    pipeline.start_all()
    record = onec_product(Description="Мойка с трассой")
    trace_id, their_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    resp = pipeline.post_product(record, headers={"traceparent": f"00-{trace_id}-{their_span}-01"})
    assert resp.status_code == 202, resp.text

    [(event,)] = pipeline.wait_sql(
        "SELECT event_id::text FROM outbox WHERE entity_id = %s",
        lambda r: len(r) == 1,
        60,
        record["Ref_Key"],
    )
    rows = pipeline.wait_sql(
        "SELECT operation, status, traceparent FROM integration_log WHERE event_id = %s",
        lambda r: any(op.startswith("catalog.product.") and status == 200 for op, status, _ in r),
        90,
        event,
    )
    for _, _, sent in rows:
        _, sent_trace, parent, _ = sent.split("-")
        assert sent_trace == trace_id and parent != their_span, rows
    by_trace = _mmctl_trace(pipeline, trace_id)
    assert by_trace["entity_ids"] == [record["Ref_Key"]] and event in by_trace["event_ids"]
    assert {"egress", "delivered"} <= {s["kind"] for s in by_trace["steps"]}, by_trace
