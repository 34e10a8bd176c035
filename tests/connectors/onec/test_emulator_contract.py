"""The 1С emulator, as `mmctl emulate onec` serves it, conforms to the HTTP service contract
(connectors/onec/http_service.openapi.yaml): schemathesis on every operation, valid and
invalid inputs, bounded and derandomized — no 5xx, no status or body off the document. Then
the answers a fuzzer rarely reaches (replays, key reuse, faults) are checked against the
same document."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import connectors.onec
from devstack.stack.env import settings_env
from mmstream.serve import free_port
from tests.support.processes import Proc, wait_http

CONTRACT = Path(connectors.onec.__file__).parent / "http_service.openapi.yaml"
USER, PASSWORD = "integration", "contract-pw"
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module")
def served_emulator(tmp_path_factory):
    """(service base URL, emulator root URL, process) of `mmctl emulate onec`."""
    from mmstream.settings import Settings

    port = free_port()
    settings = Settings(_env_file=None, onec={"username": USER, "password": PASSWORD})
    proc = Proc(
        "emulate-onec",
        ["emulate", "onec", "--port", str(port)],
        {**settings_env(settings), "MM_LOG_LEVEL": "INFO"},
        tmp_path_factory.mktemp("onec-contract"),
    ).start()
    root = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{root}/health", proc)
        yield f"{root}/trade/hs/mm", root, proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def contract():
    return schemathesis.openapi.from_path(CONTRACT)


def _fuzz(operation, mode, url: str) -> str | None:
    """Run one operation in one mode; the failure's text, or None."""

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case) -> None:
        response = case.call(base_url=url, headers=AUTH, timeout=30)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
        return None
    except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
        return f"{operation.label} [{mode.value}]: {exc}"
    return None


def test_no_operation_answers_a_server_error_or_off_the_contract(served_emulator, contract):
    url, root, proc = served_emulator
    operations = [result.ok() for result in contract.get_all_operations()]
    assert len(operations) == 7
    failures = [
        failure
        for operation in operations
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        if (failure := _fuzz(operation, mode, url))
    ]
    assert proc.alive(), proc.tail()
    assert not failures, "\n\n".join(failures) + "\n--- emulator log ---\n" + proc.tail(60)
    # The fuzzer really wrote: created and refused answers both happened.
    calls = httpx.get(f"{root}/_emulator/calls?interface=hs", timeout=10).json()
    statuses = {c["status"] for c in calls}
    assert {200, 201, 400, 401, 404, 409} <= statuses


def test_replays_reuse_faults_and_auth_answer_as_documented(served_emulator, contract):
    url, root, _ = served_emulator
    create = contract["/cash-documents"]["POST"]
    lookup = contract["/operations/{idempotency_key}"]["GET"]
    key = f"contract-{uuid.uuid4()}"
    doc = {
        "source_id": "cash:1",
        "kind": "cash_expense",
        "date": "2024-05-01T09:00:00",
        "amount": 500,
        "employee_id": str(uuid.uuid4()),
    }

    def post(body: dict, **headers) -> httpx.Response:
        return httpx.post(
            f"{url}/cash-documents",
            json=body,
            headers={**AUTH, "Idempotency-Key": key, **headers},
            timeout=10,
        )

    first, again, reused = post(doc), post(doc), post({**doc, "amount": 501})
    assert (first.status_code, again.status_code, reused.status_code) == (201, 200, 409)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    found = httpx.get(f"{url}/operations/{key}", headers=AUTH, timeout=10)
    assert found.json() == first.json()
    for response in (first, again, reused):
        create.validate_response(response)
    lookup.validate_response(found)

    httpx.post(
        f"{root}/_emulator/faults",
        json={"target": "hs", "status": 503, "retry_after": 4},
        timeout=10,
    ).raise_for_status()
    busy = post({**doc, "source_id": "cash:2"})
    assert busy.status_code == 503 and busy.headers["retry-after"] == "4"
    assert busy.json()["error"]["code"] == "base_unavailable"
    httpx.post(
        f"{root}/_emulator/faults",
        json={"target": "hs", "status": 409, "code": "object_locked"},
        timeout=10,
    ).raise_for_status()
    locked = post({**doc, "source_id": "cash:2"})
    assert locked.json()["error"]["code"] == "object_locked"
    no_auth = httpx.post(
        f"{url}/cash-documents", json=doc, headers={"Idempotency-Key": key}, timeout=10
    )
    assert no_auth.status_code == 401 and no_auth.headers["www-authenticate"].startswith("Basic")
    no_key = httpx.post(f"{url}/cash-documents", json=doc, headers=AUTH, timeout=10)
    assert no_key.status_code == 400
    missing = httpx.get(f"{url}/operations/never-used", headers=AUTH, timeout=10)
    assert missing.status_code == 404
    for response in (busy, locked, no_auth, no_key):
        create.validate_response(response)
    lookup.validate_response(missing)
