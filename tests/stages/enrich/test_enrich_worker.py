"""The enrichment worker as a process, between the bridge (a process) and the Bitrix24
emulator (a process) seeded with entities: events become full records on
raw.bitrix24.<entity>, deletes become tombstones, many events share `batch` calls, a
failing command does not hold back the others, and the cursor poller closes the gap an
undelivered event leaves, without publishing a change twice."""

from __future__ import annotations

import json

import pytest

from mmstream.dlq.format import failure_headers
from mmstream.envelope import decode_headers
from mmstream.kafka.producer import AckedProducer, OutRecord
from tests.support.bitrix24 import DLQ_TOPIC, DOMAIN, record_json
from tests.support.processes import eventually
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e


def by_key(settings, topic: str, expect: int) -> dict[str, list]:
    out: dict[str, list] = {}
    for msg in count_records(settings, topic, expect_at_least=expect, timeout_s=60):
        out.setdefault(msg.key().decode(), []).append(msg)
    return out


def wait_records(stack, topic: str, keys: set[str], timeout_s: float = 60.0) -> dict[str, list]:
    def check():
        stack.assert_alive()
        found = by_key(stack.settings, topic, 0)
        return found if keys <= set(found) else None

    try:
        return eventually(check, timeout_s, interval_s=0.5, message=f"{sorted(keys)} on {topic}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


def test_event_gives_the_full_record_on_the_same_partition(enrich_stack):
    stack = enrich_stack.start_emulator().start_bridge()
    stack.put_entity(
        "deal",
        42,
        {
            "TITLE": "Доставка #42",
            "OPPORTUNITY": "1500.00",
            "UF_CRM_1C_GUID": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09",
        },
    )
    event = stack.post_event("ONCRMDEALUPDATE", 42).json()
    stack.start_enrich()

    (msg,) = wait_records(stack, "raw.bitrix24.deal", {"deal:42"})["deal:42"]
    value = record_json(msg)
    deal = stack.rest("crm.deal.get", {"id": 42})
    assert {k: v for k, v in value.items() if not k.startswith("_")} == deal
    assert value["TITLE"] == "Доставка #42" and value["ID"] == "42"
    assert value["_event"]["kind"] == "UPDATE" and value["_event"]["event"] == "ONCRMDEALUPDATE"
    assert value["_fetched_at"]
    assert msg.partition() == event["partition"]  # co-partitioned with raw.bitrix24.event
    headers = decode_headers(msg.headers())
    assert headers["ce_source"] == f"/bitrix24/{DOMAIN}" and headers["ce_subject"] == "deal:42"
    assert headers["mm.version"] == deal["DATE_MODIFY"]
    assert headers["x-request-id"]  # traced from the bridge request


def test_deletes_and_vanished_entities_are_tombstones(enrich_stack):
    stack = enrich_stack.start_emulator().start_bridge()
    stack.put_entity("contact", 7, {"NAME": "Иван"})
    stack.post_event("ONCRMCONTACTDELETE", 7)  # deleted: no fetch needed
    stack.post_event("ONCRMCOMPANYUPDATE", 8)  # updated, then deleted before the fetch
    stack.post_event("ONTASKUPDATE", 9)  # tasks.task.get answers [] when gone
    stack.post_event("ONCRMDYNAMICITEMUPDATE", 10, entity_type_id=1220)
    stack.start_enrich()

    topics = {
        "raw.bitrix24.contact": "contact:7",
        "raw.bitrix24.company": "company:8",
        "raw.bitrix24.task": "task:9",
        "raw.bitrix24.item": "item:1220:10",
    }
    for topic, key in topics.items():
        (msg,) = wait_records(stack, topic, {key})[key]
        assert msg.value() is None, (topic, msg.value())
        assert decode_headers(msg.headers())["mm.version"] == "deleted"
    assert not [c for c in stack.emulator_calls("crm.contact.get")]


def test_many_events_are_fetched_in_batch_calls(enrich_stack):
    stack = enrich_stack.start_emulator().start_bridge()
    expected = {}
    for i in range(1, 13):
        stack.put_entity("deal", i, {"TITLE": f"deal {i}"})
        stack.post_event("ONCRMDEALADD", i)
        expected[("raw.bitrix24.deal", f"deal:{i}")] = f"deal {i}"
    for i in range(1, 5):
        stack.put_entity("task", 100 + i, {"TITLE": f"task {i}"})
        stack.post_event("ONTASKADD", 100 + i)
        expected[("raw.bitrix24.task", f"task:{100 + i}")] = f"task {i}"
        stack.put_entity("item:1220", i, {"title": f"item {i}"})
        stack.post_event("ONCRMDYNAMICITEMADD", i, entity_type_id=1220)
        expected[("raw.bitrix24.item", f"item:1220:{i}")] = f"item {i}"
        stack.put_entity("product", 200 + i, {"name": f"product {i}"})
        stack.post_event("CATALOG.PRODUCT.ON.ADD", 200 + i)
        expected[("raw.bitrix24.product", f"product:{200 + i}")] = f"product {i}"
    stack.start_enrich()  # the events wait in Kafka: the first batch takes them together

    for topic in {t for t, _ in expected}:
        keys = {k for t, k in expected if t == topic}
        found = wait_records(stack, topic, keys)
        for key in keys:
            value = record_json(found[key][-1])
            title = value.get("TITLE") or value.get("title") or value.get("name")
            assert title == expected[(topic, key)]
    batches = stack.batch_calls()
    assert batches and max(len(c["params"]["cmd"]) for c in batches) > 1, batches
    commands = sum(len(c["params"]["cmd"]) for c in batches)
    assert commands >= len(expected)
    # Nothing was fetched outside `batch` (no failures to re-fetch one by one).
    singles = [
        c for c in stack.emulator_calls() if c["method"].endswith(".get") and not c["in_batch"]
    ]
    assert singles == []


def test_a_failing_command_does_not_hold_back_the_others(enrich_stack):
    stack = enrich_stack.start_emulator().start_bridge()
    for i in range(1, 6):
        stack.put_entity("deal", i, {"TITLE": f"deal {i}"})
    # deal 3: refused for good (no right) -> DLQ; deal 4: one transient 500 -> re-fetched.
    stack.inject_fault(
        method="crm.deal.get",
        entity_id="3",
        status=403,
        error="ACCESS_DENIED",
        description="Access denied",
        times=20,
    )
    stack.inject_fault(method="crm.deal.get", entity_id="4", status=500, times=1)
    for i in range(1, 6):
        stack.post_event("ONCRMDEALUPDATE", i)
    junk = AckedProducer(stack.settings.kafka, client_id="junk")
    import asyncio

    asyncio.run(
        junk.send(OutRecord(stack.settings.topic("raw.bitrix24.event"), b"{not json", b"deal:99"))
    )
    junk.close()
    stack.start_enrich()

    found = wait_records(stack, "raw.bitrix24.deal", {"deal:1", "deal:2", "deal:4", "deal:5"})
    assert record_json(found["deal:4"][0])["TITLE"] == "deal 4"
    dlq = wait_records(stack, DLQ_TOPIC, {"deal:3", "deal:99"})
    reasons = {k: failure_headers(v[0].headers()) for k, v in dlq.items()}
    assert reasons["deal:3"]["error.code"] == "bitrix24_access_denied"
    assert reasons["deal:3"]["stage"] == "enrich"
    assert json.loads(dlq["deal:3"][0].value())["id"] == "3"  # the original event, unchanged
    assert reasons["deal:99"]["error.code"] == "invalid_record"
    assert "deal:3" not in by_key(stack.settings, "raw.bitrix24.deal", 4)
    # The failures were fetched again one by one (their batch errors say too little).
    singles = {c["params"]["id"] for c in stack.emulator_calls("crm.deal.get") if not c["in_batch"]}
    assert {"3", "4"} <= {str(s) for s in singles}


def test_poller_closes_the_gap_and_a_change_seen_twice_is_published_once(enrich_stack):
    stack = enrich_stack.start_emulator().start_bridge()
    # deal 10 changes but its event never arrives; deal 11's event does.
    stack.put_entity(
        "deal", 10, {"TITLE": "lost event", "DATE_MODIFY": "2030-01-01T10:00:00+03:00"}
    )
    stack.put_entity("deal", 11, {"TITLE": "v1", "DATE_MODIFY": "2030-01-01T10:00:05+03:00"})
    stack.post_event("ONCRMDEALUPDATE", 11)
    enrich = stack.start_enrich()
    wait_records(stack, "raw.bitrix24.deal", {"deal:11"})

    # Now the poller (restarted with polling on) lists both: deal 10 is new, deal 11 was
    # published already from its event.
    enrich.stop()
    stack.configure(poll_enabled=True, poll_interval_s=0.5, poll_entities=["deal"])
    stack.start_enrich()
    wait_records(stack, "raw.bitrix24.deal", {"deal:10"})
    events = wait_records(stack, "raw.bitrix24.event", {"deal:11"})
    sightings = eventually(
        lambda: [
            m
            for m in by_key(stack.settings, "raw.bitrix24.event", 2).get("deal:11", [])
            if record_json(m)["kind"] == "POLL"
        ],
        30,
        message="POLL sighting of deal 11",
    )
    stack.wait_committed(stack.enrich_group, events["deal:11"] + sightings)
    fetched = [c for c in stack.emulator_calls("crm.deal.get") if str(c["params"]["id"]) == "11"]
    assert len(fetched) >= 2  # fetched for the event and for the sighting ...
    assert len(by_key(stack.settings, "raw.bitrix24.deal", 2)["deal:11"]) == 1  # ... published once
    cursor = stack.sql("SELECT since, seen_ids FROM bitrix24_poll_cursor WHERE entity = 'deal'")
    assert cursor == [("2030-01-01T10:00:05+03:00", ["11"])]

    # A real change without an event is still published: the skip hides repeats only.
    stack.put_entity("deal", 11, {"TITLE": "v2", "DATE_MODIFY": "2030-01-01T10:00:09+03:00"})
    found = eventually(
        lambda: (
            (r := by_key(stack.settings, "raw.bitrix24.deal", 3)["deal:11"]) and len(r) == 2 and r
        ),
        60,
        message="second version of deal 11",
    )
    assert [record_json(m)["TITLE"] for m in found] == ["v1", "v2"]
    assert record_json(found[1])["_event"]["kind"] == "POLL"
