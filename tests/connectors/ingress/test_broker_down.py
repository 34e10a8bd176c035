"""Invariant 1: a 2xx means the record is in Kafka. With the broker stopped the bridge
answers 503 with Retry-After, never 2xx."""

from __future__ import annotations

from fastapi.testclient import TestClient

from connectors.ingress.app import create_app
from connectors.ingress.auth import mint_token
from devstack.stack.broker import EmbeddedBroker
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.topics import load_catalog
from tests.support.stack import onec_product


def test_broker_stopped_gives_503_with_retry_after(settings, tmp_path):
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log").start()
    try:
        settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"bootstrap_servers": broker.bootstrap, "produce_timeout_s": 2.0}
                )
            }
        )
        apply(settings, load_catalog(settings.topics_file))
        headers = {
            "Authorization": f"Bearer {mint_token(settings.auth, subject='t', roles=['1c'])}"
        }
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert (
                client.post("/v1/onec/products", json=onec_product(), headers=headers).status_code
                == 202
            )
            broker.stop()
            for _ in range(3):
                resp = client.post("/v1/onec/products", json=onec_product(), headers=headers)
                assert resp.status_code == 503, resp.text
                assert resp.json()["error"]["code"] == "broker_unavailable"
                assert int(resp.headers["retry-after"]) > 0
            batch = client.post("/v1/onec/products/batch", json=[onec_product()], headers=headers)
            assert batch.status_code == 503
            assert client.get("/health/ready").status_code == 503
    finally:
        broker.stop()
