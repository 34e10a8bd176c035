"""POST /v1/bitrix24/events through the real bridge, broker and PostgreSQL: each supported
event publishes one ids-only record keyed by entity; near-duplicates publish once; what is
not an authentic, supported event gets a precise 4xx and leaves the topic empty."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.events import SUPPORTED
from mmstream.envelope import decode_headers
from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog
from tests.support.bitrix24 import (
    APP_TOKEN,
    DOMAIN,
    MEMBER_ID,
    event_body,
    install_body,
    php_form,
    placement_body,
    with_tokens,
)
from tests.support.topics import count_records

URL = "/v1/bitrix24/events"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOPIC = "raw.bitrix24.event"


@pytest.fixture
def bridge_settings(settings):
    s = with_tokens(settings, event_dedupe_window_s=30.0)
    apply(s, load_catalog(s.topics_file))
    return s


def post(bridge, body: bytes, headers: dict | None = None):
    return bridge.post(URL, content=body, headers=FORM if headers is None else headers)


def check(resp, status: int, code: str, reason: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == resp.headers["x-request-id"]
    if reason:
        assert body["error"]["details"][0]["reason"] == reason


def test_every_supported_event_publishes_one_record_with_its_key(bridge, bridge_settings):
    expected = {}
    for n, (event, (entity, kind)) in enumerate(sorted(SUPPORTED.items()), start=1):
        type_id = 1220 if entity == "item" else None
        resp = post(bridge, event_body(event, n, entity_type_id=type_id))
        assert resp.status_code == 200, resp.text
        key = f"item:1220:{n}" if entity == "item" else f"{entity}:{n}"
        assert resp.json()["status"] == "accepted" and resp.json()["key"] == key
        expected[key] = (event, entity, kind, resp.json()["event_id"])

    records = count_records(bridge_settings, TOPIC, expect_at_least=len(expected), quiet_s=0)
    assert sorted(r.key().decode() for r in records) == sorted(expected)
    for msg in records:
        event, entity, kind, event_id = expected[msg.key().decode()]
        value = json.loads(msg.value())
        assert (value["event"], value["entity"], value["kind"]) == (event, entity, kind)
        assert value["member_id"] == MEMBER_ID and value["domain"] == DOMAIN
        assert value["ts"] == "1736405807" and value["event_handler_id"] == "201"
        assert value["entity_type_id"] == ("1220" if entity == "item" else None)
        assert "application_token" not in msg.value().decode()  # the secret stays at the edge
        headers = decode_headers(msg.headers())
        assert headers["ce_id"] == event_id and headers["ce_specversion"] == "1.0"
        assert headers["ce_source"] == f"/bitrix24/{DOMAIN}"
        assert headers["ce_subject"] == msg.key().decode()
        assert headers["ce_time"] == "2025-01-09T06:56:47Z"


def test_near_duplicate_within_the_window_publishes_once(bridge, bridge_settings):
    first = post(bridge, event_body("ONCRMDEALUPDATE", 42, ts="1736405807"))
    again = post(bridge, event_body("ONCRMDEALUPDATE", 42, ts="1736405809"))
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    # Another kind of change, another entity, another portal's id space: not duplicates.
    other = [
        post(bridge, event_body("ONCRMDEALDELETE", 42)),
        post(bridge, event_body("ONCRMDEALUPDATE", 43)),
    ]
    assert [r.json()["status"] for r in other] == ["accepted", "accepted"]

    records = count_records(bridge_settings, TOPIC, expect_at_least=3, quiet_s=0)
    kinds = sorted((r.key().decode(), json.loads(r.value())["kind"]) for r in records)
    assert kinds == [("deal:42", "DELETE"), ("deal:42", "UPDATE"), ("deal:43", "UPDATE")]


def test_repeat_passes_once_the_pending_event_was_fetched(bridge, bridge_settings):
    """A repeat is dropped only while the event that passed waits for its fetch: after the
    enrichment marked it fetched, a new event may carry a newer change, so it passes."""
    import asyncio

    from connectors.bitrix24.event_dedupe import mark_fetched

    assert post(bridge, event_body("ONCRMCOMPANYUPDATE", 7)).json()["status"] == "accepted"
    assert post(bridge, event_body("ONCRMCOMPANYUPDATE", 7)).json()["status"] == "duplicate"

    async def fetched():
        engine = create_async_engine(bridge_settings.require_database_url())
        async with engine.begin() as conn:
            await mark_fetched(conn, [(MEMBER_ID, "company:7", "UPDATE")])
        await engine.dispose()

    asyncio.run(fetched())
    assert post(bridge, event_body("ONCRMCOMPANYUPDATE", 7)).json()["status"] == "accepted"
    assert post(bridge, event_body("ONCRMCOMPANYUPDATE", 7)).json()["status"] == "duplicate"
    assert len(count_records(bridge_settings, TOPIC, expect_at_least=2, quiet_s=0)) == 2


def test_dedupe_fails_open_when_the_database_is_unreachable(bridge, bridge_settings):
    engine = bridge.app.state.event_engine
    bridge.app.state.event_engine = create_async_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none"
    )
    try:
        statuses = [
            post(bridge, event_body("ONCRMCONTACTUPDATE", 5)).json()["status"] for _ in range(2)
        ]
    finally:
        bridge.app.state.event_engine = engine
    # Bitrix24 never re-sends: publishing a duplicate beats losing the event.
    assert statuses == ["accepted", "accepted"]
    assert len(count_records(bridge_settings, TOPIC, expect_at_least=2, quiet_s=0)) == 2


def test_unknown_portal_is_refused_naming_the_one_served(bridge):
    resp = post(bridge, event_body("ONCRMDEALUPDATE", 1, member_id="0" * 32))
    check(resp, 403, "unknown_portal")
    assert resp.json()["error"]["message"] == (
        f"this deployment serves one Bitrix24 portal (member_id {MEMBER_ID}); run one "
        "deployment per portal"
    )


def test_wrong_application_token_of_the_served_portal_has_its_own_code(bridge):
    check(
        post(bridge, event_body("ONCRMDEALUPDATE", 1, token=APP_TOKEN[:-1] + "0")),
        401,
        "invalid_application_token",
    )


def test_missing_application_token(bridge):
    body = php_form(
        {
            "event": "ONCRMDEALUPDATE",
            "data": {"FIELDS": {"ID": "1"}},
            "auth": {"member_id": MEMBER_ID, "domain": DOMAIN},
        }
    )
    check(post(bridge, body), 401, "unauthenticated", "no_token")


def test_install_callback_at_a_webhook_deployment(bridge):
    check(post(bridge, install_body()), 409, "install_not_expected")


def test_unknown_event(bridge):
    check(
        post(bridge, event_body("ONCRMACTIVITYADD", 9)), 422, "unsupported_event", "unknown_event"
    )


@pytest.mark.parametrize("event", ["ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE"])
def test_lead_events_are_not_accepted_into_a_topic_nobody_reads(bridge, event):
    # Leads are in none of the flows: accepting them would acknowledge records that are lost.
    check(post(bridge, event_body(event, 9)), 422, "unsupported_event", "unknown_event")


def test_supported_event_without_an_id(bridge):
    body = php_form(
        {
            "event": "ONCRMDEALADD",
            "data": {"FIELDS": {}},
            "auth": {"member_id": MEMBER_ID, "application_token": APP_TOKEN},
        }
    )
    check(post(bridge, body), 422, "validation_failed", "bad_id")


def test_placement_open(bridge):
    check(post(bridge, placement_body()), 400, "bad_request", "placement")


def test_empty_post(bridge):
    check(post(bridge, b""), 400, "bad_request", "empty_body")
    check(post(bridge, b"", headers={}), 400, "bad_request", "empty_body")


def test_json_body(bridge):
    doc = {
        "event": "ONCRMDEALUPDATE",
        "data": {"FIELDS": {"ID": "1"}},
        "auth": {"member_id": MEMBER_ID, "application_token": APP_TOKEN},
    }
    resp = bridge.post(URL, json=doc)
    check(resp, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<?php system($_GET['c']); ?>", "malformed_form"),
        (b"<?xml version='1.0'?><methodCall/>", "no_event"),
        (b"\xff\xfe\x00\x01binary", "malformed_form"),
        (b"a=1&a[b]=2", "malformed_form"),
        (b"username=admin&password=admin", "no_event"),
    ],
)
def test_scanner_junk(bridge, body, reason):
    check(post(bridge, body), 400, "bad_request", reason)


def test_oversized_body(bridge, bridge_settings):
    body = (
        event_body("ONCRMDEALUPDATE", 1) + b"&pad=" + b"x" * bridge_settings.ingress.max_body_bytes
    )
    check(post(bridge, body), 413, "body_too_large")


def test_get_is_not_allowed(bridge):
    check(bridge.get(URL), 405, "method_not_allowed")


def test_nothing_reaches_the_topic(bridge, bridge_settings):
    """All the refusals above leave the topic empty; a valid event afterwards is the only
    record there (so the check can see records at all)."""
    bad = [
        event_body("ONCRMDEALUPDATE", 1, member_id="0" * 32),
        event_body("ONCRMDEALUPDATE", 1, token="wrong"),
        install_body(),
        placement_body(),
        b"",
        b"<?php ?>",
        b"\xff\xfe",
        event_body("ONCRMACTIVITYADD", 9),
        php_form(
            {
                "event": "ONCRMDEALADD",
                "auth": {"member_id": MEMBER_ID, "application_token": APP_TOKEN},
            }
        ),
    ]
    for body in bad:
        assert 400 <= post(bridge, body).status_code < 500
    assert bridge.post(URL, json={"event": "ONCRMDEALADD"}).status_code == 415
    assert post(bridge, event_body("ONCRMDEALADD", 77)).status_code == 200
    records = count_records(bridge_settings, TOPIC, expect_at_least=1, quiet_s=0)
    assert [r.key().decode() for r in records] == ["deal:77"]
