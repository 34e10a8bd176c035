"""Authentication: bearer JWTs or per-source X-API-Key, deny by default, with a declared way out
for routes that authenticate by their own protocol; probes and metrics stay open."""

from __future__ import annotations

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from connectors.ingress.app import create_app
from connectors.ingress.auth import authenticates_itself, identify, mint_token
from connectors.ingress.errors import ApiError
from mmstream.envelope import decode_headers
from mmstream.kafka.admin import apply
from mmstream.settings import ApiKey
from mmstream.topics import load_catalog
from tests.support.stack import onec_product
from tests.support.topics import count_records

URL = "/v1/onec/products"
ONEC_KEY = "onec-key-0f9b1c2d3e4f5a6b7c8d9e0f"
COURIER_KEY = "courier-key-1a2b3c4d5e6f7a8b9c0d"


@pytest.fixture
def bridge_settings(settings):
    keys = {
        "onec-main": ApiKey(key=SecretStr(ONEC_KEY), roles=["1c"]),
        "courier-app": ApiKey(key=SecretStr(COURIER_KEY), roles=["courier"]),
        "unset": ApiKey(key=SecretStr(""), roles=["admin"]),
    }
    s = settings.model_copy(update={"auth": settings.auth.model_copy(update={"api_keys": keys})})
    apply(s, load_catalog(s.topics_file))
    return s


def _refused(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert resp.json()["request_id"] == resp.headers["x-request-id"]
    if status == 401:
        assert resp.headers["www-authenticate"].startswith("Bearer")


def test_api_key_is_accepted_and_names_the_principal(bridge, bridge_settings):
    record = onec_product()
    resp = bridge.post(URL, json=record, headers={"X-API-Key": ONEC_KEY})
    assert resp.status_code == 202, resp.text
    (published,) = count_records(bridge_settings, "raw.onec.product", expect_at_least=1, quiet_s=0)
    assert published.key().decode() == record["Ref_Key"]
    assert decode_headers(published.headers())["ce_source"] == "/onec/onec-main"


def test_bad_credentials_are_refused_and_publish_nothing(bridge, bridge_settings, token):
    forged = bridge_settings.auth.model_copy(update={"jwt_secret": SecretStr("y" * 40)})
    expired = mint_token(bridge_settings.auth, subject="old", roles=["1c"], ttl_s=-60)
    cases = [
        ({"X-API-Key": "not-a-key"}, 401, "unauthenticated"),
        ({"X-API-Key": ""}, 401, "unauthenticated"),  # an empty header is no credential
        ({"X-API-Key": COURIER_KEY}, 403, "forbidden"),
        # A bearer token wins over an API key: a bad token is not rescued by a good key.
        ({"Authorization": "Bearer garbage", "X-API-Key": ONEC_KEY}, 401, "unauthenticated"),
        (
            {"Authorization": f"Bearer {mint_token(forged, subject='x', roles=['1c'])}"},
            401,
            "unauthenticated",
        ),
        ({"Authorization": f"Bearer {expired}"}, 401, "unauthenticated"),
        # Basic is for routes that check it themselves (CommerceML), not a credential here.
        ({"Authorization": "Basic c2l0ZTpzZWNyZXQ="}, 401, "unauthenticated"),
    ]
    for headers, status, code in cases:
        _refused(bridge.post(URL, json=onec_product(), headers=headers), status, code)
    assert (
        "expired"
        in bridge.post(
            URL, json=onec_product(), headers={"Authorization": f"Bearer {expired}"}
        ).json()["error"]["message"]
    )
    good = onec_product()
    assert (
        bridge.post(URL, json=good, headers={"Authorization": f"Bearer {token}"}).status_code == 202
    )
    records = count_records(bridge_settings, "raw.onec.product", expect_at_least=1, quiet_s=0)
    assert [r.key().decode() for r in records] == [good["Ref_Key"]]


def test_identify_never_matches_an_unset_key(bridge_settings):
    auth = bridge_settings.auth
    assert identify(auth, None, None) is None
    assert identify(auth, "Basic abc", None) is None
    with pytest.raises(ApiError):
        identify(auth, None, " ")
    identity = identify(auth, None, COURIER_KEY)
    assert (identity.principal, identity.roles, identity.scheme) == (
        "courier-app",
        ("courier",),
        "api_key",
    )


def test_routes_are_denied_by_default_unless_they_authenticate_themselves(bridge_settings, token):
    """A route that forgets authentication is still closed; one that declares its own check
    (security: [] in its operation) is reached without credentials."""
    app = create_app(bridge_settings)

    @app.post("/v1/test/forgot-auth")
    async def forgot(request: Request) -> dict:
        return {"principal": request.state.principal}

    @app.post("/v1/test/own-auth", openapi_extra=authenticates_itself())
    async def own() -> dict:
        return {"reached": True}

    with TestClient(app) as client:
        _refused(client.post("/v1/test/forgot-auth"), 401, "unauthenticated")
        resp = client.post("/v1/test/forgot-auth", headers={"Authorization": f"Bearer {token}"})
        assert resp.json() == {"principal": "onec-test"}
        assert client.post("/v1/test/forgot-auth", headers={"X-API-Key": ONEC_KEY}).json() == {
            "principal": "onec-main"
        }
        assert client.post("/v1/test/own-auth").json() == {"reached": True}
        assert client.app.openapi()["paths"]["/v1/test/own-auth"]["post"]["security"] == []


def test_every_documented_operation_without_its_own_security_refuses_anonymous_calls(bridge):
    """Covers the routes of every source as they are added: an operation that does not declare
    its own `security` must answer 401 to a request without credentials."""
    doc = bridge.get("/openapi.json").json()
    assert doc["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
    checked = 0
    for path, item in doc["paths"].items():
        concrete = path.replace("{", "").replace("}", "")  # any value for path parameters
        for method, operation in item.items():
            if "security" in operation or method not in ("get", "post", "put", "patch", "delete"):
                continue
            resp = bridge.request(method.upper(), concrete)
            assert resp.status_code == 401, (
                f"{method.upper()} {path}: {resp.status_code} {resp.text}"
            )
            checked += 1
    assert checked >= 2  # at least the 1С push routes


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics", "/openapi.json"])
def test_probes_metrics_and_the_document_are_open(bridge, path):
    resp = bridge.get(path)
    assert resp.status_code == 200, resp.text
    if path == "/metrics":
        assert "mm_ingress_requests_total" in resp.text
