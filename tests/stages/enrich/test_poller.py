"""The cursor poller in-process against the emulator, the broker and PostgreSQL: keyset
paging lists every changed row once (also more rows in one second than a page holds),
late rows in the cursor's second are caught, the cursor survives restarts, the advisory
lock lets one poller run per portal, and every entity family can be listed."""

from __future__ import annotations

import asyncio
import json

import psycopg

from tests.support.topics import count_records

SECOND = "2030-05-01T12:00:00+03:00"


def sightings(harness, expect: int) -> list[tuple[str, str]]:
    msgs = count_records(harness.settings, "raw.bitrix24.event", expect_at_least=expect)
    out = []
    for msg in msgs:
        value = json.loads(msg.value())
        assert value["kind"] == "POLL" and msg.key().decode() == value["key"]
        out.append((value["key"], value["version"]))
    return out


def test_keyset_paging_lists_every_changed_row_once(harness):
    harness.settings = harness.settings.model_copy(
        update={
            "bitrix24": harness.settings.bitrix24.model_copy(update={"poll_entities": ["deal"]})
        }
    )
    for i in range(1, 121):  # an import: 120 rows modified within one second
        harness.portal.put_entity("deal", i, {"TITLE": str(i), "DATE_MODIFY": SECOND})
    for i in range(121, 131):
        harness.portal.put_entity(
            "deal", i, {"DATE_MODIFY": f"2030-05-01T12:00:{i - 100:02d}+03:00"}
        )

    async def first(p):
        return [await p.poller.poll_once(), await p.poller.poll_once()]

    assert asyncio.run(harness.run(first)) == [130, 0]
    seen = sightings(harness, 130)
    assert sorted(k for k, _ in seen) == sorted(f"deal:{i}" for i in range(1, 131))
    assert dict(seen)["deal:7"] == SECOND
    assert harness.sql("SELECT since, seen_ids FROM bitrix24_poll_cursor") == [
        ("2030-05-01T12:00:30+03:00", ["130"])
    ]

    # A row committed late within the cursor's second, and a newer change: both listed, by a
    # new poller (the cursor lives in PostgreSQL).
    harness.portal.put_entity("deal", 131, {"DATE_MODIFY": "2030-05-01T12:00:30+03:00"})
    harness.portal.put_entity(
        "deal", 5, {"TITLE": "again", "DATE_MODIFY": "2030-05-01T12:01:00+03:00"}
    )

    async def later(p):
        return await p.poller.poll_once()

    assert asyncio.run(harness.run(later)) == 2
    after = sightings(harness, 132)
    assert sorted(set(after) - set(seen)) == [
        ("deal:131", "2030-05-01T12:00:30+03:00"),
        ("deal:5", "2030-05-01T12:01:00+03:00"),
    ]
    assert len(after) == len(set(after)) == 132  # nothing listed twice


def test_one_poller_per_portal(harness):
    harness.portal.put_entity("deal", 1, {"DATE_MODIFY": SECOND})
    url = harness.settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('bitrix24-poll'), hashtext('portal.test'))")

        async def blocked(p):
            return await p.poller.poll_once()

        assert asyncio.run(harness.run(blocked)) is None
    assert harness.sql("SELECT count(*) FROM bitrix24_poll_cursor") == [(0,)]
    assert asyncio.run(harness.run(blocked)) == 1  # the lock was released with its session


def test_every_entity_family_can_be_listed(harness):
    harness.settings = harness.settings.model_copy(
        update={
            "bitrix24": harness.settings.bitrix24.model_copy(
                update={
                    "poll_entities": ["deal", "contact", "company", "task", "item:1220", "product"]
                }
            )
        }
    )
    for entity in ("deal", "contact", "company", "task", "item:1220"):
        harness.portal.put_entity(entity, 3, {"title": "x"} if entity.startswith("item") else {})
    harness.portal.put_entity("product", 9, {"name": "Кабель"})

    async def scenario(p):
        return await p.poller.poll_once()

    assert asyncio.run(harness.run(scenario)) == 6
    keys = sorted(k for k, _ in sightings(harness, 6))
    assert keys == ["company:3", "contact:3", "deal:3", "item:1220:3", "product:9", "task:3"]
    cursors = dict(harness.sql("SELECT entity, since FROM bitrix24_poll_cursor"))
    assert set(cursors) == {"deal", "contact", "company", "task", "item:1220", "product"}
