"""The Enricher and Fetcher in-process, against the emulator, the broker and PostgreSQL:
the version check (a change seen twice is published once, a real change again), the mark
for the bridge's dedupe, batch answers that cannot be matched, retries and the DLQ."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from connectors.bitrix24.events import POLL, EventRef
from mmstream.dlq.format import failure_headers
from mmstream.envelope import decode_headers
from stages.enrich.fetch import Failed, Fetched, Gone
from stages.source_record import SourceRecord
from tests.stages.enrich.harness import event_record
from tests.support.bitrix24 import DLQ_TOPIC, MEMBER_ID
from tests.support.topics import count_records

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "bitrix24_rest"
DEAL5 = EventRef("deal", "5", "UPDATE", "ONCRMDEALUPDATE")


def poll(ref: EventRef) -> EventRef:
    return EventRef(ref.entity, ref.id, POLL, POLL, ref.entity_type_id)


def test_a_change_is_published_once_however_often_it_is_seen(harness):
    put = harness.portal.put_entity
    # DATE_CREATE given: a deal restored from the recycle bin keeps it (the emulator would
    # stamp a re-created record with the current second).
    created = "2026-02-01T09:00:00+03:00"
    put(
        "deal",
        5,
        {"TITLE": "v1", "DATE_MODIFY": "2026-02-01T10:00:00+03:00", "DATE_CREATE": created},
    )

    async def scenario(p):
        results = [await p.enricher.handle([event_record(DEAL5)])]  # published
        results.append(await p.enricher.handle([event_record(poll(DEAL5))]))  # same version: skip
        # Another change within the same second: same DATE_MODIFY, other content.
        put(
            "deal",
            5,
            {"TITLE": "v2", "DATE_MODIFY": "2026-02-01T10:00:00+03:00", "DATE_CREATE": created},
        )
        results.append(await p.enricher.handle([event_record(poll(DEAL5))]))
        harness.portal.delete_entity("deal", 5)
        results.append(await p.enricher.handle([event_record(poll(DEAL5))]))  # gone: tombstone
        results.append(
            await p.enricher.handle(
                [event_record(EventRef("deal", "5", "DELETE", "ONCRMDEALDELETE"))]
            )
        )  # tombstoned already
        # Restored from the recycle bin with its old content: published again.
        put(
            "deal",
            5,
            {"TITLE": "v2", "DATE_MODIFY": "2026-02-01T10:00:00+03:00", "DATE_CREATE": created},
        )
        results.append(await p.enricher.handle([event_record(poll(DEAL5))]))
        return results

    results = asyncio.run(harness.run(scenario))
    assert [(r.published, r.tombstones, r.skipped) for r in results] == [
        (1, 0, 0),
        (0, 0, 1),
        (1, 0, 0),
        (0, 1, 0),
        (0, 0, 1),
        (1, 0, 0),
    ]
    records = count_records(harness.settings, "raw.bitrix24.deal", expect_at_least=4)
    titles = [None if m.value() is None else json.loads(m.value())["TITLE"] for m in records]
    assert titles == ["v1", "v2", None, "v2"]
    ids = [decode_headers(m.headers())["ce_id"] for m in records]
    assert ids[1] == ids[3] != ids[0]  # the same version and content: the same event id
    assert harness.sql("SELECT version FROM bitrix24_published WHERE entity_key = 'deal:5'") == [
        ("2026-02-01T10:00:00+03:00",)
    ]


def test_events_of_one_key_in_a_batch_are_fetched_once(harness):
    harness.portal.put_entity("deal", 5, {"TITLE": "x"})
    records = [
        event_record(DEAL5, offset=0),
        event_record(poll(DEAL5), offset=1),
        event_record(DEAL5, offset=2),
    ]

    async def scenario(p):
        return await p.enricher.handle(records)

    result = asyncio.run(harness.run(scenario))
    assert (result.published, result.skipped) == (1, 0)
    assert len([c for c in harness.portal.calls if c["method"] == "crm.deal.get"]) == 1


def test_fetching_marks_pending_bridge_events(harness):
    harness.portal.put_entity("company", 3, {"TITLE": "x"})
    lead = EventRef("company", "3", "UPDATE", "ONCRMCOMPANYUPDATE")

    async def scenario(p):
        await p.enricher.handle([event_record(lead), event_record(poll(lead), member_id="")])

    asyncio.run(harness.run(scenario))
    rows = harness.sql(
        "SELECT member_id, entity_key, kind, fetched_at IS NOT NULL FROM bitrix24_event_seen"
    )
    assert rows == [(MEMBER_ID, "company:3", "UPDATE", True)]


def test_batch_errors_that_cannot_be_matched_are_fetched_one_by_one(harness):
    """The batch answer is the captured real one (errors as a list, results under other
    keys); single gets go to the emulator."""
    captured = (FIXTURES / "crm_get_batch_mix_success_and_errors.json").read_bytes()
    emulator = httpx.ASGITransport(app=harness.emulator)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch.json"):
            return httpx.Response(
                200, content=captured, headers={"Content-Type": "application/json"}
            )
        return await emulator.handle_async_request(request)

    harness.portal.put_entity("deal", 1, {"TITLE": "one"})
    refs = [EventRef("deal", str(i), "UPDATE", "ONCRMDEALUPDATE") for i in (1, 2)]

    async def scenario(p):
        return await p.fetcher.fetch(refs)

    out = asyncio.run(harness.run(scenario, transport=httpx.MockTransport(handler)))
    assert out["deal:1"] == Fetched(harness.portal.entities.crm["deal"][1])
    assert out["deal:2"] == Gone()
    singles = [c["params"]["id"] for c in harness.portal.calls if c["method"] == "crm.deal.get"]
    assert sorted(singles) == [1, 2]


def test_transient_batch_failures_are_retried(harness):
    harness.portal.put_entity("deal", 5, {"TITLE": "x"})
    harness.portal.faults.append(_fault("batch", 503, "QUERY_LIMIT_EXCEEDED", times=2))

    async def scenario(p):
        return await p.fetcher.fetch([DEAL5])

    out = asyncio.run(harness.run(scenario))
    assert isinstance(out["deal:5"], Fetched)
    assert [c["status"] for c in harness.portal.calls if c["method"] == "batch"] == [503, 503, 200]


def test_retries_run_out_into_the_dlq(harness):
    harness.portal.put_entity("deal", 5, {"TITLE": "x"})
    harness.portal.faults.append(_fault("batch", 500, "INTERNAL_SERVER_ERROR", times=100))

    async def scenario(p):
        return await p.enricher.handle([event_record(DEAL5, partition=4, offset=17)])

    result = asyncio.run(harness.run(scenario, max_attempts=2))
    assert result.dead_lettered == 1 and result.published == 0
    (msg,) = count_records(harness.settings, DLQ_TOPIC, expect_at_least=1)
    reason = failure_headers(msg.headers())
    assert (reason["error.code"], reason["attempts"], reason["stage"]) == (
        "bitrix24_server_error",
        "2",
        "enrich",
    )
    assert (reason["source.partition"], reason["source.offset"]) == ("4", "17")
    assert msg.partition() == 4 and msg.key() == b"deal:5"


def test_commands_are_chunked_by_enrich_batch_max(harness):
    harness.settings = harness.settings.model_copy(
        update={"bitrix24": harness.settings.bitrix24.model_copy(update={"enrich_batch_max": 3})}
    )
    for i in range(1, 8):
        harness.portal.put_entity("deal", i, {"TITLE": str(i)})
    refs = [EventRef("deal", str(i), "UPDATE", "ONCRMDEALUPDATE") for i in range(1, 8)]

    async def scenario(p):
        return await p.fetcher.fetch(refs)

    out = asyncio.run(harness.run(scenario))
    assert all(isinstance(o, Fetched) for o in out.values()) and len(out) == 7
    sizes = [len(c["params"]["cmd"]) for c in harness.portal.calls if c["method"] == "batch"]
    assert sizes == [3, 3, 1]
    assert not any(isinstance(o, Failed) for o in out.values())


def _fault(method: str, status: int, error: str, times: int):
    from devstack.emulators.bitrix24 import Fault

    return Fault(method=method, status=status, error=error, description=error, times=times)


# ------------------------------------------------------------------ poison (invariant 9)


def test_an_unreadable_event_record_is_dead_lettered_and_the_batch_goes_on(harness):
    """JSON nested deeper than the parser goes is not a ValueError (RecursionError)."""
    harness.portal.put_entity("deal", 5, {"TITLE": "fine"})
    deep = SourceRecord("raw.bitrix24.event", 0, 0, b"deal:6", b"[" * 100_000, [])

    async def scenario(p):
        return await p.enricher.handle([deep, event_record(DEAL5, offset=1)])

    result = asyncio.run(harness.run(scenario))
    assert (result.published, result.dead_lettered) == (1, 1)
    (dead,) = count_records(harness.settings, DLQ_TOPIC, expect_at_least=1)
    failure = failure_headers(dead.headers())
    assert failure["stage"] == "enrich" and "RecursionError" in failure["error.message"]
    assert dead.value() == b"[" * 100_000
    assert [
        m.key() for m in count_records(harness.settings, "raw.bitrix24.deal", expect_at_least=1)
    ] == [b"deal:5"]


def test_an_entity_the_broker_refuses_is_dead_lettered_and_the_others_published(harness):
    """A fetched deal too large to be a Kafka record (the portal's text fields are large)."""
    harness.portal.put_entity("deal", 5, {"TITLE": "fine"})
    harness.portal.put_entity("deal", 7, {"TITLE": "huge", "COMMENTS": "я" * 1_500_000})
    huge = EventRef("deal", "7", "UPDATE", "ONCRMDEALUPDATE")

    async def scenario(p):
        return await p.enricher.handle(
            [event_record(huge, offset=0), event_record(DEAL5, offset=1)]
        )

    result = asyncio.run(harness.run(scenario))
    assert (result.published, result.dead_lettered) == (1, 1)
    (dead,) = count_records(harness.settings, DLQ_TOPIC, expect_at_least=1)
    failure = failure_headers(dead.headers())
    assert dead.key() == b"deal:7" and failure["stage"] == "enrich"
    assert (
        failure["error.code"] == "value_rejected"
        and "MSG_SIZE_TOO_LARGE" in failure["error.message"]
    )
    assert [
        m.key() for m in count_records(harness.settings, "raw.bitrix24.deal", expect_at_least=1)
    ] == [b"deal:5"]
    # Not remembered as published: a later change of deal 7 is fetched and tried again.
    assert harness.sql("SELECT entity_key FROM bitrix24_published") == [("deal:5",)]
