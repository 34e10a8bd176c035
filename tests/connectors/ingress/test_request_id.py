"""X-Request-Id: accepted or generated, echoed on every answer, carried in the Kafka headers of
the published record and in the bridge's log lines."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid

import pytest
from fastapi.testclient import TestClient

from connectors.ingress.app import create_app
from mmstream import log
from mmstream.envelope import decode_headers
from tests.support.stack import onec_product
from tests.support.topics import count_records

URL = "/v1/onec/products"
GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def json_log():
    """The bridge's JSON logging (as `mmctl bridge` sets it up), into a buffer; parsed on call."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    log.setup("bridge", "INFO", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_given_id_is_echoed_and_travels_in_the_kafka_headers(bridge, bridge_settings, token):
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    resp = bridge.post(
        URL,
        json=onec_product(),
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["x-request-id"] == request_id
    assert resp.json()["request_id"] == request_id
    (record,) = count_records(bridge_settings, "raw.onec.product", expect_at_least=1, quiet_s=0)
    assert decode_headers(record.headers())["x-request-id"] == request_id


def test_missing_or_malformed_id_is_replaced_by_a_generated_one(bridge, token):
    auth = {"Authorization": f"Bearer {token}"}
    seen = set()
    for extra in ({}, {"X-Request-Id": "has spaces; and junk"}, {"X-Request-Id": "x" * 129}):
        resp = bridge.post(URL, json=onec_product(), headers={**auth, **extra})
        assert resp.status_code == 202, resp.text
        assert GENERATED.match(resp.headers["x-request-id"])
        assert resp.json()["request_id"] == resp.headers["x-request-id"]
        seen.add(resp.headers["x-request-id"])
    assert len(seen) == 3


@pytest.mark.parametrize("path", ["/v1/onec/products", "/no/such/route", "/health/live"])
def test_every_answer_echoes_it(bridge, path):
    """Errors from the auth check, from routing and plain probes alike."""
    resp = bridge.request(
        "POST" if path == URL else "GET", path, headers={"X-Request-Id": "trace-7"}
    )
    assert resp.headers["x-request-id"] == "trace-7"
    if resp.status_code >= 400:
        assert resp.json()["request_id"] == "trace-7"


def test_log_lines_carry_it(bridge, token, json_log):
    record = onec_product()
    resp = bridge.post(
        URL,
        json=record,
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "trace-log-1"},
    )
    assert resp.status_code == 202, resp.text
    accepted = [line for line in json_log() if line.get("message") == "record accepted"]
    assert [line.get("request_id") for line in accepted] == ["trace-log-1"]
    assert accepted[0]["subject"] == record["Ref_Key"]


def test_an_unexpected_error_is_a_500_with_the_id_in_answer_and_log(
    bridge_settings, token, json_log
):
    app = create_app(bridge_settings)

    @app.post("/v1/test/broken")
    async def broken() -> dict:
        raise RuntimeError("a bug")

    with TestClient(app) as client:
        resp = client.post(
            "/v1/test/broken",
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "trace-bug-1"},
        )
    assert resp.status_code == 500
    assert resp.headers["x-request-id"] == "trace-bug-1"
    assert resp.json()["error"]["code"] == "internal_error"
    assert resp.json()["request_id"] == "trace-bug-1"
    logged = [line for line in json_log() if line.get("message") == "unhandled error in the bridge"]
    assert [line.get("request_id") for line in logged] == ["trace-bug-1"]
    assert "a bug" in logged[0]["exc_info"]


def test_upstream_traceparent_travels_in_the_kafka_headers(bridge, bridge_settings, token):
    """A W3C traceparent from 1С (or a proxy in front of it) is kept on the raw record, so
    the calls made for the change continue that trace; an invalid one is dropped."""
    upstream = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    auth = {"Authorization": f"Bearer {token}"}
    resp = bridge.post(URL, json=onec_product(), headers={**auth, "traceparent": upstream})
    assert resp.status_code == 202, resp.text
    resp = bridge.post(URL, json=onec_product(), headers={**auth, "traceparent": "00-junk-01"})
    assert resp.status_code == 202, resp.text
    records = count_records(bridge_settings, "raw.onec.product", expect_at_least=2, quiet_s=0)
    assert sorted(decode_headers(r.headers()).get("traceparent", "") for r in records) == [
        "",
        upstream,
    ]


def test_cloud_events_take_the_bound_traceparent():
    from mmstream.envelope import TRACEPARENT, CloudEvent

    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    plain = CloudEvent(id="e", source="s", type="t", subject="x", time="now")
    assert TRACEPARENT not in dict(plain.headers())
    with log.bind(traceparent=upstream):
        traced = CloudEvent(id="e", source="s", type="t", subject="x", time="now")
    assert dict(traced.headers())[TRACEPARENT] == upstream.encode()
    assert CloudEvent.from_headers(decode_headers(traced.headers())) == traced
