"""Idempotency-Key on POST: a re-sent request gets the first answer and publishes nothing more;
a reused key is 422, a key in flight 409; only 2xx/4xx answers are kept (a 503 stays
retryable); keys live in PostgreSQL and expire."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from connectors.ingress.app import create_app
from connectors.ingress.auth import mint_token
from connectors.ingress.idempotency_store import fingerprint
from devstack.stack.broker import EmbeddedBroker
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.topics import load_catalog
from tests.support.processes import eventually
from tests.support.stack import onec_product
from tests.support.topics import count_records

URL = "/v1/onec/products"
JSON = "application/json"


def sql(settings, query: str, *params) -> list[tuple]:
    url = settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def post(client, token: str, body: bytes, key: str | None, url: str = URL):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(url, content=body, headers=headers)


def encoded(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def keys_published(settings, expect: int) -> list[str]:
    return [
        r.key().decode()
        for r in count_records(settings, "raw.onec.product", expect_at_least=expect, quiet_s=0)
    ]


def put_row(
    settings,
    key: str,
    body: bytes,
    *,
    status: int | None,
    lease: str,
    expires: str,
    principal: str = "onec-test",
) -> None:
    """A key row as another request (or an older one) would have left it."""
    sql(
        settings,
        "INSERT INTO ingress_idempotency (principal, path, key, fingerprint, claim, status, "
        "headers, body, lease_until, expires_at) VALUES (%s, %s, %s, %s, %s, %s, '[]', %s, "
        f"now() + interval '{lease}', now() + interval '{expires}')",
        principal,
        URL,
        key,
        fingerprint(b"", JSON.encode(), body),
        uuid.uuid4(),
        status,
        b"{}" if status else None,
    )


def test_same_key_same_body_replays_the_answer_and_publishes_once(bridge, bridge_settings, token):
    record, key = onec_product(), str(uuid.uuid4())
    first = post(bridge, token, encoded(record), key)
    again = post(bridge, token, encoded(record), key)
    assert first.status_code == again.status_code == 202, first.text
    assert again.content == first.content  # byte for byte, the original request_id included
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert keys_published(bridge_settings, 1) == [record["Ref_Key"]]


def test_without_a_key_a_resend_publishes_again(bridge, bridge_settings, token):
    """The baseline the test above improves on (and proof that the topic check can see two)."""
    record = onec_product()
    assert post(bridge, token, encoded(record), None).status_code == 202
    assert post(bridge, token, encoded(record), None).status_code == 202
    assert keys_published(bridge_settings, 2) == [record["Ref_Key"]] * 2
    assert sql(bridge_settings, "SELECT count(*) FROM ingress_idempotency") == [(0,)]


def test_same_key_other_body_is_422_and_publishes_nothing_more(bridge, bridge_settings, token):
    record, key = onec_product(), str(uuid.uuid4())
    assert post(bridge, token, encoded(record), key).status_code == 202
    reused = post(bridge, token, encoded(onec_product()), key)
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert reused.json()["request_id"] == reused.headers["x-request-id"]
    assert keys_published(bridge_settings, 1) == [record["Ref_Key"]]


def test_keys_are_scoped_to_the_principal_and_the_path(bridge, bridge_settings, token):
    record, key = onec_product(), "shared-key-1"
    other = mint_token(bridge_settings.auth, subject="onec-branch", roles=["1c"])
    assert post(bridge, token, encoded(record), key).status_code == 202
    assert post(bridge, other, encoded(record), key).headers.get("idempotent-replayed") is None
    batch = post(bridge, token, encoded([record]), key, url=URL + "/batch")
    assert batch.status_code == 200, batch.text
    assert keys_published(bridge_settings, 3) == [record["Ref_Key"]] * 3


def test_a_4xx_answer_is_kept_and_replayed(bridge, bridge_settings, token):
    key, broken = str(uuid.uuid4()), encoded(onec_product(Ref_Key="not-a-guid"))
    first = post(bridge, token, broken, key)
    assert first.status_code == 422 and first.json()["error"]["code"] == "validation_failed"
    again = post(bridge, token, broken, key)
    assert (again.status_code, again.content) == (422, first.content)
    assert again.headers["idempotent-replayed"] == "true"


def test_a_key_in_flight_is_409_and_a_crashed_claim_is_taken_over(bridge, bridge_settings, token):
    busy, crashed = onec_product(), onec_product()
    put_row(bridge_settings, "busy", encoded(busy), status=None, lease="1 minute", expires="1 day")
    put_row(
        bridge_settings,
        "crashed",
        encoded(crashed),
        status=None,
        lease="-1 second",
        expires="1 day",
    )
    resp = post(bridge, token, encoded(busy), "busy")
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "idempotency_in_progress"
    assert int(resp.headers["retry-after"]) >= 1
    # The claim of a request that died is taken over once its lease ended, by the same request
    # only: it may have published already, which the sink's dedupe absorbs.
    assert post(bridge, token, encoded(onec_product()), "crashed").status_code == 422
    assert post(bridge, token, encoded(crashed), "crashed").status_code == 202
    assert keys_published(bridge_settings, 1) == [crashed["Ref_Key"]]


def test_expired_keys_are_reusable_and_purged(bridge_settings, token):
    settings = bridge_settings.model_copy(
        update={"ingress": bridge_settings.ingress.model_copy(update={"purge_interval_s": 0.3})}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as bridge:
        put_row(
            bridge_settings, "old", b"something else", status=202, lease="-2 days", expires="-1 day"
        )
        record = onec_product()
        assert post(bridge, token, encoded(record), "old").status_code == 202
        put_row(bridge_settings, "stale", b"x", status=202, lease="-2 days", expires="-1 second")
        # The bridge's purge job deletes "stale"; "old" was renewed with the new answer.
        eventually(
            lambda: (
                sql(
                    bridge_settings,
                    "SELECT key, status, expires_at > now() + "
                    "interval '23 hours' FROM ingress_idempotency ORDER BY key",
                )
                == [("old", 202, True)]
            ),
            30,
            message="the expired key is purged",
        )
    assert keys_published(bridge_settings, 1) == [record["Ref_Key"]]


def test_bad_keys_and_oversized_bodies_are_refused_before_anything(bridge, bridge_settings, token):
    bad_key = post(bridge, token, encoded(onec_product()), "x" * 256)
    assert bad_key.status_code == 400 and bad_key.json()["error"]["code"] == "bad_request"
    big = encoded(onec_product(Комментарий="я" * bridge_settings.ingress.max_body_bytes))
    too_large = post(bridge, token, big, "big-one")
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "body_too_large"
    assert sql(bridge_settings, "SELECT count(*) FROM ingress_idempotency") == [(0,)]


def test_a_503_is_not_kept_so_the_same_key_succeeds_later(settings, tmp_path):
    record, key = encoded(onec_product()), str(uuid.uuid4())
    token = mint_token(settings.auth, subject="onec-test", roles=["1c"])

    def bridge_on(broker: EmbeddedBroker):
        s = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"bootstrap_servers": broker.bootstrap, "produce_timeout_s": 2.0}
                )
            }
        )
        apply(s, load_catalog(s.topics_file))
        return s, TestClient(create_app(s), raise_server_exceptions=False)

    down = EmbeddedBroker(free_port(), log_path=tmp_path / "down.log").start()
    try:
        _, client = bridge_on(down)
        with client:
            down.stop()
            for _ in range(2):  # retried with the same key: run again, not replayed
                resp = post(client, token, record, key)
                assert resp.status_code == 503, resp.text
                assert "idempotent-replayed" not in resp.headers
            assert sql(settings, "SELECT count(*) FROM ingress_idempotency") == [(0,)]
    finally:
        down.stop()
    up = EmbeddedBroker(free_port(), log_path=tmp_path / "up.log").start()
    try:
        s, client = bridge_on(up)
        with client:
            assert post(client, token, record, key).status_code == 202
            assert post(client, token, record, key).headers["idempotent-replayed"] == "true"
            assert len(keys_published(s, 1)) == 1
    finally:
        up.stop()


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_only_post_is_concerned(bridge, token, method):
    resp = bridge.request(method, "/health/live", headers={"Idempotency-Key": "k"})
    assert "idempotent-replayed" not in resp.headers
