"""The committed openapi.yaml is the app's document; every operation documents the errors the
bridge can answer, and real error answers match the documented error body."""

from __future__ import annotations

import difflib

import jsonschema_rs
import pytest

from connectors.ingress.openapi import (
    ERROR_SCHEMA,
    OPENAPI_FILE,
    OPERATIONS_TAG,
    REGENERATE,
    current_yaml,
)
from tests.support.stack import onec_product

METHODS = ("get", "put", "post", "delete", "patch")


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_committed_document_is_the_apps():
    expected = current_yaml()
    committed = OPENAPI_FILE.read_text("utf-8") if OPENAPI_FILE.exists() else ""
    if committed != expected:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(True),
                    expected.splitlines(True),
                    "openapi.yaml (committed)",
                    "the app",
                )
            )[:80]
        )
        pytest.fail(
            f"openapi.yaml differs from the app; regenerate it with `{REGENERATE}` "
            f"and commit it.\n{diff}"
        )


def test_every_operation_documents_the_shared_errors(bridge):
    doc = bridge.get("/openapi.json").json()
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
    checked = 0
    for path, method, operation in operations(doc):
        if OPERATIONS_TAG in operation.get("tags", []):
            assert operation["security"] == [], f"{path} must be documented as open"
            continue
        expected = {"429", "503"}
        if "security" not in operation:
            expected |= {"401", "403"}
        if method == "post":
            expected |= {"400", "413", "415", "422"}
        if method == "post" and "security" not in operation:
            expected.add("409")
            assert any(
                p.get("$ref") == "#/components/parameters/IdempotencyKey"
                or p.get("name", "").lower() == "idempotency-key"
                for p in operation["parameters"]
            )
        missing = expected - set(operation["responses"])
        assert not missing, f"{method.upper()} {path} does not document {sorted(missing)}"
        checked += 1
    assert checked >= 2
    assert "HTTPValidationError" not in str(doc)  # FastAPI's body is not what the bridge answers


def test_probes_and_metrics_are_documented(bridge):
    paths = bridge.get("/openapi.json").json()["paths"]
    assert {"/health/live", "/health/ready", "/metrics"} <= set(paths)
    assert "503" in paths["/health/ready"]["get"]["responses"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]


def test_real_error_answers_match_the_documented_error_body(bridge, bridge_settings, token):
    validator = jsonschema_rs.validator_for(ERROR_SCHEMA)
    auth = {"Authorization": f"Bearer {token}"}
    big = b"x" * (bridge_settings.ingress.max_body_bytes + 1)
    answers = [
        bridge.post("/v1/onec/products", json=onec_product()),  # 401
        bridge.get("/no/such/route", headers=auth),  # 404
        bridge.get("/v1/onec/products", headers=auth),  # 405
        bridge.post(
            "/v1/onec/products", content=big, headers={**auth, "Content-Type": "application/json"}
        ),
        bridge.post(
            "/v1/onec/products", content=b"{}", headers={**auth, "Content-Type": "text/plain"}
        ),
        bridge.post("/v1/onec/products", json={"Ref_Key": "x"}, headers=auth),  # 422
        bridge.post("/v1/onec/products", json={}, headers={**auth, "Idempotency-Key": "\t"}),
    ]
    assert sorted({a.status_code for a in answers}) == [400, 401, 404, 405, 413, 415, 422]
    for answer in answers:
        errors = [e.message for e in validator.iter_errors(answer.json())]
        assert not errors, f"{answer.status_code} {answer.text}: {errors}"
