"""Logs are JSON, carry the request id and event id from the bridge to the egress call,
and never contain a secret (webhook code, JWT secret, bearer token)."""

from __future__ import annotations

import json

import pytest

from tests.support.stack import onec_product

pytestmark = pytest.mark.e2e


def test_request_id_travels_and_secrets_stay_out_of_logs(pipeline):
    record = onec_product()
    pipeline.start_emulator()
    # One refused call makes the egress log a retry line for this record as well.
    pipeline.inject_fault(
        method="catalog.product.add",
        status=503,
        error="INTERNAL_SERVER_ERROR",
        description="blip",
        times=1,
        xml_id=record["Ref_Key"],
    )
    pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()
    resp = pipeline.post_product(record, headers={"X-Request-Id": "req-trace-42"})
    assert resp.status_code == 202 and resp.headers["x-request-id"] == "req-trace-42"
    event_id = resp.json()["event_id"]
    pipeline.wait_sql(
        "SELECT 1 FROM egress_delivery WHERE entity_id = %s", lambda r: r, 60, record["Ref_Key"]
    )
    pipeline.stop()

    lines = {}
    for name, proc in pipeline.procs.items():
        parsed = []
        for raw in proc.log_path.read_text().splitlines():
            if raw.strip():
                parsed.append(json.loads(raw))  # every line is JSON
        lines[name] = parsed

    def mentions(name, **fields):
        return [l for l in lines[name] if all(l.get(k) == v for k, v in fields.items())]

    assert mentions(
        "bridge", request_id="req-trace-42", event_id=event_id, message="record accepted"
    )
    assert mentions(
        "egress",
        request_id="req-trace-42",
        event_id=event_id,
        message="target call failed, retrying",
    )
    assert mentions(
        "egress",
        request_id="req-trace-42",
        event_id=event_id,
        message="delivered",
        target="bitrix24",
    )

    secrets = [
        pipeline.settings.bitrix24.webhook_url.get_secret_value().rstrip("/").rsplit("/", 1)[-1],
        pipeline.settings.auth.jwt_secret.get_secret_value(),
        pipeline.token,
    ]
    for name, proc in pipeline.procs.items():
        text = proc.log_path.read_text()
        for secret in secrets:
            assert secret not in text, f"a secret appears in the {name} log"
