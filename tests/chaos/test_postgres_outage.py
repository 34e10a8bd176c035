"""Chaos: PostgreSQL stops under the mixed load and comes back.

While it is gone no consumer group may commit an offset past what it stored (checked with
the admin client during the outage); afterwards nothing is skipped: every accepted record
ends stored and at its target. Workers may fail-stop while the database is away; the test
restarts a dead worker as a supervisor would, and the row says which ones needed it.

The test runs its own PostgreSQL: stopping the session's would break every other test.
"""

from __future__ import annotations

import time

import pytest

from devstack.stack.postgres import EmbeddedPostgres
from mmstream.kafka.admin import admin_client
from mmstream.kafka.lag import committed_offsets
from mmstream.serve import free_port
from stages.enrich.worker import group_id as enrich_group
from tests.chaos.load import WORKERS, Laps, MixedLoad, account, chaos_stack, settle
from tests.support.services import Databases
from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e

#: (load before the stop, outage, load after), seconds, by chaos mode.
SIZES = {"short": (4, 10, 4), "quick": (4, 10, 4), "full": (10, 30, 15)}


@pytest.fixture
def own_postgres(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pgdata", free_port(), durable=False).start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, own_postgres):
    """The test's settings on its own PostgreSQL (a fresh migrated database there)."""
    url = Databases(own_postgres.url()).create()
    return settings.model_copy(update={"database_url": type(settings.database_url)(url)})


@pytest.fixture
def stack(pipeline):
    stack = chaos_stack(pipeline)
    yield stack
    stack.stop()


def groups(stack) -> dict[str, str]:
    s = stack.settings.streams
    return {
        "entity sink": s.entity_sink_group,
        "egress": s.egress_group,
        "enrichment": enrich_group(stack.settings),
    }


def commits(stack) -> dict[str, dict]:
    admin = admin_client(stack.settings)
    return {
        name: {tp: c.offset for tp, c in committed_offsets(admin, group).items()}
        for name, group in groups(stack).items()
    }


def advanced(first: dict[str, dict], last: dict[str, dict]) -> dict[str, list]:
    """Per group, the partitions whose committed offset moved between two readings."""
    moved = {}
    for name, offsets in last.items():
        changes = [
            f"{t}[{p}] {first[name].get((t, p))} -> {o}"
            for (t, p), o in offsets.items()
            if o != first[name].get((t, p))
        ]
        if changes:
            moved[name] = changes
    return moved


def test_postgres_outage_commits_nothing_and_skips_nothing(
    stack, own_postgres, chaos_mode, chaos_report
):
    before_s, outage_s, after_s = SIZES[chaos_mode]
    began = time.monotonic()
    laps = Laps()
    stack.start_everything()
    laps("start")
    load_began = time.monotonic()
    load = MixedLoad(stack).start(pace_s=0.5)
    revived: list[str] = []
    try:
        stack.wait_sql("SELECT count(*) FROM customer_order", lambda r: r[0][0] > 0, 90)
        laps("first order stored")
        # The watch below proves "nothing committed during the outage" only for groups that
        # had committed before it: wait until the sink and egress have (on a busy machine the
        # egress group's first commit can come after the first order is stored). The load
        # runs before_s at least before the stop: these waits count towards it.
        wait_for(
            stack,
            "the entity sink and egress groups to commit before the outage",
            lambda: all(commits(stack)[g] for g in ("entity sink", "egress")),
            timeout_s=60,
            interval_s=1,
        )
        time.sleep(max(0.0, before_s - (time.monotonic() - load_began)))
        laps("groups committed")
        own_postgres.stop()
        # A commit already on its way for a transaction that committed before the stop is
        # fine: read the offsets once the stop has settled, then watch them.
        time.sleep(2)
        first = commits(stack)
        readings = []
        deadline = time.monotonic() + outage_s - 2
        while time.monotonic() < deadline:
            time.sleep(min(3, max(0.1, deadline - time.monotonic())))
            readings.append(commits(stack))
        died_in_outage = [n for n in WORKERS if not stack.procs[n].alive()]
        own_postgres.start()
        revived += stack.revive()
        laps("outage")
        time.sleep(after_s)
    finally:
        load.stop()
    laps("load after")
    waited = settle(
        stack, load, timeout_s=240, quiet_s=40, during=lambda: revived.extend(stack.revive())
    )
    laps("settle")
    moved = advanced(first, readings[-1]) if readings else {}
    tally = account(stack, load.offers)
    refused = sorted({(o.entity, o.status) for o in load.offers if not o.accepted})
    db_groups_moved = {g: v for g, v in moved.items() if g != "enrichment"}
    # The watch must have seen the groups' commits, or "nothing moved" would prove nothing.
    watched = {g: len(v) for g, v in first.items()}
    verdict = (
        not db_groups_moved
        and all(watched[g] for g in ("entity sink", "egress"))
        and tally.lost == 0
        and tally.duplicated == 0
    )
    chaos_report.record(
        "postgres outage",
        verdict=verdict,
        **tally.figures(),
        seconds=time.monotonic() - began,
        notes=f"PostgreSQL stopped {outage_s}s; committed partitions watched {watched}, "
        "offsets committed meanwhile: "
        f"{ {g: len(v) for g, v in moved.items()} or 'none' }; workers dead at the end of "
        f"the outage: {died_in_outage or 'none'}; restarted by the test: "
        f"{sorted(set(revived)) or 'none (they recovered by themselves)'}; bridge answers "
        f"other than 2xx: {refused or 'none'}; settled in {waited:.0f}s; seconds per "
        f"phase {laps.seconds}",
        phases=laps.seconds,
        committed_during_outage=moved,
        died_in_outage=died_in_outage,
        revived=revived,
        refused=[(o.entity, o.status, o.retry_after) for o in load.offers if not o.accepted],
        lost_records=tally.lost_records,
        duplicates=tally.duplicates,
    )
    assert verdict, (
        db_groups_moved,
        watched,
        tally.lost_records[:20],
        tally.duplicates,
        stack.logs(),
    )
