"""The body limit holds on every route (form, XML, binary, not only JSON), before the body is
read; a route may declare a larger one (CommerceML file uploads)."""

from __future__ import annotations

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from connectors.ingress.app import create_app
from connectors.ingress.auth import authenticates_itself
from connectors.ingress.middleware import max_body

LIMIT = 1000


@pytest.fixture
def client(bridge_settings, token):
    settings = bridge_settings.model_copy(
        update={"ingress": bridge_settings.ingress.model_copy(update={"max_body_bytes": LIMIT})}
    )
    app = create_app(settings)

    @app.post("/v1/test/raw")
    async def raw(request: Request) -> dict:
        return {"size": len(await request.body())}

    @app.post(
        "/v1/test/upload",
        dependencies=[max_body(lambda s: 3 * s.ingress.max_body_bytes)],
        openapi_extra=authenticates_itself(),
    )
    async def upload(request: Request) -> dict:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as test_client:
        yield test_client


def chunked(size: int):
    """A body without Content-Length (chunked transfer): only counting can stop it."""
    for _ in range(size // 100):
        yield b"x" * 100


def _too_large(resp) -> None:
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "body_too_large"
    assert resp.json()["request_id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize(
    "ctype", ["application/x-www-form-urlencoded", "application/xml", "application/octet-stream"]
)
def test_any_body_over_the_limit_is_413(client, ctype):
    assert client.post(
        "/v1/test/raw", content=b"x" * LIMIT, headers={"Content-Type": ctype}
    ).json() == {"size": LIMIT}
    _too_large(
        client.post("/v1/test/raw", content=b"x" * (LIMIT + 1), headers={"Content-Type": ctype})
    )
    _too_large(
        client.post("/v1/test/raw", content=chunked(LIMIT + 100), headers={"Content-Type": ctype})
    )


def test_a_route_may_declare_a_larger_limit(client):
    assert client.post("/v1/test/upload", content=b"x" * (2 * LIMIT)).json() == {"size": 2 * LIMIT}
    assert client.post("/v1/test/upload", content=chunked(3 * LIMIT)).json() == {"size": 3 * LIMIT}
    _too_large(client.post("/v1/test/upload", content=b"x" * (3 * LIMIT + 1)))
    _too_large(client.post("/v1/test/upload", content=chunked(3 * LIMIT + 100)))


def test_a_keyed_request_is_buffered_within_the_default_limit(client):
    """The idempotency store buffers before routing, so the default limit holds there."""
    _too_large(
        client.post(
            "/v1/test/upload", content=b"x" * (2 * LIMIT), headers={"Idempotency-Key": "k1"}
        )
    )


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(client):
    resp = client.post("/v1/test/raw", content=chunked(50 * LIMIT), headers={"Authorization": ""})
    assert resp.status_code == 401, resp.text
