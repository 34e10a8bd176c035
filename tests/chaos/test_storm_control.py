"""The emulators' storm control (``/_emulator/storm``) that the target-storm scenario
drives: each kind does what it says, on the API only, and for its duration only."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from devstack.emulators.bitrix24.app import create_app as bitrix24_app
from devstack.emulators.bitrix24.faults import ConnectionDropped
from devstack.emulators.onec.app import create_app as onec_app

HOOK = "/rest/1/devwebhookcode/"


def add_company(client: TestClient, title: str):
    return client.post(f"{HOOK}crm.company.add.json", json={"fields": {"TITLE": title}})


def companies(client: TestClient) -> list[str]:
    return [c["TITLE"] for c in client.get("/_emulator/entities/company").json()]


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("query_limit", 503, "QUERY_LIMIT_EXCEEDED"),
        ("operation_time_limit", 429, "OPERATION_TIME_LIMIT"),
        ("overload_limit", 503, "OVERLOAD_LIMIT"),
        ("server_error", 500, "INTERNAL_SERVER_ERROR"),
    ],
)
def test_bitrix24_error_kinds_answer_like_the_portal_and_execute_nothing(kind, status, error):
    client = TestClient(bitrix24_app())
    client.post("/_emulator/storm", json={"rate": 1, "mix": {kind: 1}}).raise_for_status()
    resp = add_company(client, "Ромашка")
    assert (resp.status_code, resp.json()["error"]) == (status, error)
    if kind == "operation_time_limit":
        assert resp.json()["time"]["operating_reset_at"] >= int(time.time())
    assert companies(client) == []  # the admin API is not stormed
    assert client.get("/_emulator/storm").json()["hits"] == {kind: 1}


def test_a_reset_after_write_executes_the_call_and_drops_the_answer():
    client = TestClient(bitrix24_app())
    client.post("/_emulator/storm", json={"rate": 1, "mix": {"reset_after_write": 1}})
    with pytest.raises(ConnectionDropped):
        add_company(client, "Ромашка")
    assert companies(client) == ["Ромашка"]
    client.post("/_emulator/storm", json={"rate": 1, "mix": {"reset": 1}})
    with pytest.raises(ConnectionDropped):
        add_company(client, "Лютик")
    assert companies(client) == ["Ромашка"]


def test_a_storm_ends_by_itself_or_when_stopped_and_rejects_unknown_kinds():
    client = TestClient(bitrix24_app())
    assert client.post("/_emulator/storm", json={"mix": {"hail": 1}}).status_code == 422
    client.post("/_emulator/storm", json={"duration_s": 0.2, "rate": 1, "mix": {"server_error": 1}})
    assert add_company(client, "a").status_code == 500
    time.sleep(0.3)
    assert add_company(client, "b").status_code == 200
    client.post("/_emulator/storm", json={"rate": 1, "mix": {"server_error": 1}})
    assert client.delete("/_emulator/storm").json()["active"] is False
    assert add_company(client, "c").status_code == 200


def test_onec_storm_answers_503_with_retry_after_in_each_interfaces_shape():
    client = TestClient(onec_app())
    client.post("/_emulator/storm", json={"rate": 1, "mix": {"query_limit": 1}}).raise_for_status()
    odata = client.get(
        "/trade/odata/standard.odata/Catalog_Номенклатура", params={"$format": "json"}
    )
    assert odata.status_code == 503 and odata.headers["Retry-After"] == "1"
    assert "odata.error" in odata.json()
    service = client.get("/trade/hs/mm/ping")
    assert service.status_code == 503 and service.json()["error"]["code"] == "base_unavailable"
    assert client.get("/health").status_code == 200


def test_a_held_answer_comes_after_the_write_and_the_timeout():
    client = TestClient(bitrix24_app())
    client.post("/_emulator/storm", json={"rate": 1, "mix": {"timeout": 1}, "timeout_s": 0.5})
    began = time.monotonic()
    assert add_company(client, "Ромашка").status_code == 200
    assert time.monotonic() - began >= 0.5
    assert companies(client) == ["Ромашка"]
