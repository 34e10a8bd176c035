"""Chaos: SIGKILL of each worker (two entity-sink replicas, egress, enrichment) at
random moments under the mixed load, each restarted at once as a supervisor would.

Nothing may be lost (every accepted record stored and at its target, or dead-lettered with
its reason), no change repeated in PostgreSQL, nothing created twice in Bitrix24, nothing
posted or confirmed twice in 1С.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.load import WORKERS, Laps, MixedLoad, account, chaos_stack, settle

pytestmark = pytest.mark.e2e

#: Kills per worker kind and the pause range between kills (seconds), by chaos mode.
SIZES = {"short": (1, (1.0, 3.0)), "quick": (2, (1.0, 3.0)), "full": (10, (1.0, 6.0))}


@pytest.fixture
def stack(pipeline):
    stack = chaos_stack(pipeline)
    yield stack
    stack.stop()


def test_workers_killed_under_load_lose_and_repeat_nothing(stack, chaos_mode, chaos_report):
    kills_per_kind, pause = SIZES[chaos_mode]
    rng = random.Random(20261207)
    began = time.monotonic()
    laps = Laps()
    stack.start_everything()
    laps("start")
    load = MixedLoad(stack).start(pace_s=0.6)
    kills: list[str] = []
    try:
        plan = [kind for kind in WORKERS for _ in range(kills_per_kind)]
        rng.shuffle(plan)
        for kind in plan:
            time.sleep(rng.uniform(*pause))
            stack.restart(kind)
            kills.append(kind)
    finally:
        load.stop()
    laps("kills under load")
    waited = settle(stack, load, timeout_s=240, quiet_s=45)
    laps("settle")
    stack.assert_alive()
    tally = account(stack, load.offers)
    verdict = (
        tally.lost == 0
        and tally.duplicated == 0
        and tally.accepted == tally.offered
        and not tally.order_violations
    )
    chaos_report.record(
        "kill workers",
        verdict=verdict,
        **tally.figures(),
        seconds=time.monotonic() - began,
        notes=f"{len(kills)} SIGKILLs ({kills_per_kind} per kind: {', '.join(WORKERS.values())}), "
        f"settled in {waited:.0f}s; accepted/at target per flow {tally.flows}; seconds per "
        f"phase {laps.seconds}",
        phases=laps.seconds,
        kills=kills,
        lost_records=tally.lost_records,
        duplicates=tally.duplicates,
        dlq_reasons=tally.dlq_reasons,
        order_violations=tally.order_violations,
    )
    assert verdict, (tally.lost_records, tally.duplicates, tally.order_violations, stack.logs())
