"""Faults on the product flow: a flaky or refusing target, and a worker killed mid-batch."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.support.processes import eventually
from tests.support.stack import onec_product
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e


def _calls(pipeline, method):
    return pipeline.emulator_calls(method)


def test_transient_503_is_retried_and_permanent_400_is_dead_lettered(pipeline):
    flaky, refused, healthy = onec_product(), onec_product(), onec_product()
    pipeline.start_emulator()
    pipeline.inject_fault(
        method="catalog.product.add",
        status=503,
        error="INTERNAL_SERVER_ERROR",
        description="temporary",
        times=3,
        xml_id=flaky["Ref_Key"],
    )
    pipeline.inject_fault(
        method="catalog.product.add",
        status=400,
        error="",
        description="Field NAME is required",
        times=100,
        xml_id=refused["Ref_Key"],
    )
    pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()
    for rec in (flaky, refused, healthy):
        assert pipeline.post_product(rec).status_code == 202

    def delivered():
        names = {p["xmlId"] for p in pipeline.emulator_products()}
        return {flaky["Ref_Key"], healthy["Ref_Key"]} <= names and names

    try:
        names = eventually(delivered, 90, message="flaky and healthy delivered")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipeline.logs()}") from None
    assert refused["Ref_Key"] not in names
    flaky_adds = [
        c
        for c in _calls(pipeline, "catalog.product.add")
        if c["params"]["fields"]["xmlId"] == flaky["Ref_Key"]
    ]
    assert [c["status"] for c in flaky_adds] == [503, 503, 503, 200]

    dlq = count_records(
        pipeline.settings, "dlq.egress.bitrix24.product", expect_at_least=1, timeout_s=60
    )
    assert len(dlq) == 1
    msg = dlq[0]
    headers = {k: v.decode() for k, v in msg.headers()}
    assert msg.key().decode() == refused["Ref_Key"]
    assert headers["dlq.stage"] == "egress"
    assert headers["dlq.error.class"] == "InvalidRequest"
    assert "Field NAME is required" in headers["dlq.error.message"]
    assert headers["dlq.error.retriable"] == "false"
    assert int(headers["dlq.attempts"]) == 1
    assert headers["dlq.first_failure"] and headers["dlq.last_failure"]
    assert headers["dlq.source.topic"] == pipeline.settings.topic("egress.bitrix24.product")
    assert int(headers["dlq.source.offset"]) >= 0
    assert headers["ce_id"]  # the original headers travel with the record
    egress = count_records(pipeline.settings, "egress.bitrix24.product", expect_at_least=3)
    original = next(m for m in egress if m.key() == msg.key())
    assert msg.value() == original.value()  # original bytes, untouched


def test_sink_killed_mid_batch_loses_and_duplicates_nothing(pipeline):
    pipeline.start_emulator()
    sink = pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()
    records = [onec_product() for _ in range(600)]
    headers = {"Authorization": f"Bearer {pipeline.token}"}
    with httpx.Client(base_url=pipeline.bridge_url, headers=headers, timeout=60) as client:
        for i in range(0, len(records), 100):
            resp = client.post("/v1/onec/products/batch", json=records[i : i + 100])
            assert resp.status_code == 200, resp.text
    # Kill the sink as soon as it has stored part of the load: mid-stream, uncommitted work.
    pipeline.wait_sql("SELECT count(*) FROM product", lambda r: r[0][0] > 0, 60)
    sink.kill(signal.SIGKILL)
    stored_at_kill = pipeline.sql("SELECT count(*) FROM product")[0][0]
    time.sleep(1)
    pipeline.start_sink()
    refs = sorted(r["Ref_Key"] for r in records)
    pipeline.wait_sql("SELECT count(*) FROM product", lambda r: r[0][0] == len(records), 120)
    assert sorted(str(r[0]) for r in pipeline.sql("SELECT id FROM product")) == refs
    assert pipeline.sql("SELECT count(*), count(DISTINCT entity_id) FROM outbox") == [(600, 600)]

    def all_created():
        calls = [c for c in pipeline.emulator_calls("catalog.product.add") if c["status"] == 200]
        return len(calls) >= len(records) and calls

    try:
        creates = eventually(all_created, 180, interval_s=1.0, message="600 creates")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipeline.logs()}") from None
    time.sleep(2)  # anything duplicated would arrive now
    creates = [c for c in pipeline.emulator_calls("catalog.product.add") if c["status"] == 200]
    created_ids = [c["params"]["fields"]["xmlId"] for c in creates]
    assert sorted(created_ids) == refs, "each product created exactly once at the target"
    assert len(pipeline.emulator_products()) == len(records)
    assert 0 < stored_at_kill <= len(records)
