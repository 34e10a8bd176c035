"""Invariant 8: bad input gets a clear 4xx with a machine-readable code, and nothing is
published (the raw topic stays empty)."""

from __future__ import annotations

import json

import pytest

from connectors.ingress.auth import mint_token
from tests.support.stack import onec_product
from tests.support.topics import count_records

URL = "/v1/onec/products"


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _check(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == resp.headers["x-request-id"]


def test_invalid_json(bridge, token):
    resp = bridge.post(
        URL, content=b'{"Ref_Key": ', headers={**_auth(token), "Content-Type": "application/json"}
    )
    _check(resp, 400, "invalid_json")


def test_wrong_content_type(bridge, token):
    resp = bridge.post(
        URL,
        content=json.dumps(onec_product()).encode(),
        headers={**_auth(token), "Content-Type": "text/plain"},
    )
    _check(resp, 415, "unsupported_media_type")


@pytest.mark.parametrize("missing", ["Ref_Key", "DataVersion", "Description"])
def test_missing_required_field(bridge, token, missing):
    record = onec_product()
    del record[missing]
    resp = bridge.post(URL, json=record, headers=_auth(token))
    _check(resp, 422, "validation_failed")
    assert any(d["field"] == missing for d in resp.json()["error"]["details"])


def test_wrong_types(bridge, token):
    resp = bridge.post(
        URL, json=onec_product(Ref_Key="not-a-guid", DeletionMark="yes"), headers=_auth(token)
    )
    _check(resp, 422, "validation_failed")
    assert {d["field"] for d in resp.json()["error"]["details"]} == {"Ref_Key", "DeletionMark"}


def test_no_token(bridge):
    resp = bridge.post(URL, json=onec_product())
    _check(resp, 401, "unauthenticated")
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_wrong_token_signature(bridge, bridge_settings):
    forged = bridge_settings.auth.model_copy(
        update={"jwt_secret": type(bridge_settings.auth.jwt_secret)("x" * 40)}
    )
    resp = bridge.post(
        URL, json=onec_product(), headers=_auth(mint_token(forged, subject="x", roles=["1c"]))
    )
    _check(resp, 401, "unauthenticated")


def test_token_without_role(bridge, bridge_settings):
    courier = mint_token(bridge_settings.auth, subject="courier-7", roles=["courier"])
    resp = bridge.post(URL, json=onec_product(), headers=_auth(courier))
    _check(resp, 403, "forbidden")


def test_oversized_body(bridge, bridge_settings, token):
    record = onec_product(Комментарий="я" * bridge_settings.ingress.max_body_bytes)
    resp = bridge.post(URL, json=record, headers=_auth(token))
    _check(resp, 413, "body_too_large")


def test_not_an_object(bridge, token):
    resp = bridge.post(URL, json=[onec_product()], headers=_auth(token))
    _check(resp, 422, "validation_failed")


def test_nothing_reaches_the_topic(bridge, bridge_settings, token):
    """All the refusals above, in one client session, leave the raw topic empty; a valid
    record afterwards is the only one there (so the check can see records at all)."""
    bad = [
        dict(content=b"{", headers={**_auth(token), "Content-Type": "application/json"}),
        dict(json=onec_product(Ref_Key="nope"), headers=_auth(token)),
        dict(json=onec_product()),
        dict(
            content=b"x" * (bridge_settings.ingress.max_body_bytes + 1),
            headers={**_auth(token), "Content-Type": "application/json"},
        ),
    ]
    for kwargs in bad:
        assert 400 <= bridge.post(URL, **kwargs).status_code < 500
    good = onec_product()
    assert bridge.post(URL, json=good, headers=_auth(token)).status_code == 202
    records = count_records(bridge_settings, "raw.onec.product", expect_at_least=1, quiet_s=0)
    assert [r.key().decode() for r in records] == [good["Ref_Key"]]


def test_batch_reports_each_record(bridge, bridge_settings, token):
    good, bad = onec_product(), onec_product(Ref_Key="broken")
    resp = bridge.post(URL + "/batch", json={"value": [good, bad]}, headers=_auth(token))
    assert resp.status_code == 207, resp.text
    body = resp.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert (
        body["results"][0]["status"] == "accepted" and body["results"][0]["id"] == good["Ref_Key"]
    )
    assert body["results"][1]["status"] == "rejected"
    assert body["results"][1]["error"]["code"] == "validation_failed"
    records = count_records(bridge_settings, "raw.onec.product", expect_at_least=1, quiet_s=0)
    assert [r.key().decode() for r in records] == [good["Ref_Key"]]
