"""The cursor poller's share of the portal budget (issue 14, item 3: on by default, so it
must stay small): an idle cycle costs two list calls per entity, and a backlog is paged
through at most ``max_pages`` pages per entity and cycle, resuming from the saved cursor —
every row still listed exactly once. In-process against the emulator, the broker and
PostgreSQL (tests/stages/enrich/harness.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mmstream.settings import Bitrix24Settings
from stages.enrich.poller import CursorPoller, budget_share, calls_per_cycle
from tests.stages.enrich.test_poller import sightings


def test_calls_per_cycle_idle_and_while_paging_a_backlog():
    assert calls_per_cycle(5, 2) == (10, 25)
    assert calls_per_cycle(1, 1) == (2, 3)


def test_the_default_poller_takes_a_small_share_of_the_default_budget():
    bx = Bitrix24Settings()
    assert bx.poll_enabled
    idle, worst = budget_share(
        len(bx.poll_entities), bx.poll_max_pages, bx.poll_interval_s, bx.rate_per_s
    )
    assert idle < 0.1 and worst <= 0.25


def stamp(i: int) -> str:
    """Row ``i``'s DATE_MODIFY: one second each."""
    return f"2030-05-01T12:{i // 60:02d}:{i % 60:02d}+03:00"


@pytest.mark.parametrize("max_pages", [1, 2])
def test_a_backlog_is_paged_through_over_cycles_within_the_cap_each_row_once(harness, max_pages):
    for i in range(1, 121):
        harness.portal.put_entity("deal", i, {"TITLE": str(i), "DATE_MODIFY": stamp(i)})

    async def scenario(p):
        poller = CursorPoller(
            p.engine,
            p.client,
            p.producer,
            event_topic=harness.settings.topic("raw.bitrix24.event"),
            portal="portal.test",
            entities=["deal"],
            iblock_id=harness.settings.bitrix24.product_iblock_id,
            max_pages=max_pages,
        )
        admin = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=harness.emulator), base_url="http://portal.test"
        )
        cycles = []
        try:
            for _ in range(6):
                before = len((await admin.get("/_emulator/calls")).json())
                published = await poller.poll_once()
                calls = (await admin.get("/_emulator/calls")).json()[before:]
                cycles.append((published, len(calls)))
                if published == 0:
                    break
        finally:
            await admin.aclose()
        return cycles

    cycles = asyncio.run(harness.run(scenario))
    page = 50 * max_pages
    expected = [page] * (120 // page) + ([120 % page] if 120 % page else []) + [0]
    assert [published for published, _ in cycles] == expected
    idle, worst = calls_per_cycle(1, max_pages)
    assert all(calls <= worst for _, calls in cycles), cycles
    assert cycles[-1][1] == idle
    seen = sightings(harness, 120)
    assert sorted(int(k.split(":")[1]) for k, _ in seen) == list(range(1, 121))
