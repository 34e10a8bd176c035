"""``GET /v1/admin/trace/{id}``: admins only, read-only, the same timeline as ``mmctl trace``."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from connectors.ingress.auth import mint_token


def test_trace_route_needs_a_token_and_the_admin_role(bridge, bridge_settings, token):
    entity, event = str(uuid.uuid4()), str(uuid.uuid4())
    engine = create_engine(bridge_settings.require_database_url())
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, source_partition, "
                    "source_offset, payload, headers) VALUES (:e, 'product', :id, 'upsert', 'v1', 't', 0, 1, '{}', "
                    '\'{"x-request-id": "req-abc"}\')'
                ),
                {"e": event, "id": entity},
            )
    finally:
        engine.dispose()
    path = f"/v1/admin/trace/{event}"

    anonymous = bridge.get(path)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
    not_admin = bridge.get(path, headers={"Authorization": f"Bearer {token}"})  # role 1c
    assert not_admin.status_code == 403 and not_admin.json()["error"]["code"] == "forbidden"

    admin = mint_token(bridge_settings.auth, subject="ops", roles=["admin"])
    answer = bridge.get(path, headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["entity_ids"] == [entity] and body["request_ids"] == ["req-abc"]
    assert [s["kind"] for s in body["steps"]] == ["outbox"]
    assert "not yet published" in body["steps"][0]["summary"]

    odd = bridge.get("/v1/admin/trace/a%20b", headers={"Authorization": f"Bearer {admin}"})
    assert odd.status_code == 422
