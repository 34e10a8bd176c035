"""Chaos: both targets storm for a while under the mixed load: Bitrix24 answers
QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT, OVERLOAD_LIMIT and 500, 1С answers 503 and 500,
and both answer slowly, hold answers past the client's timeout and drop connections before
or after executing the call (``POST /_emulator/storm`` of each emulator).

Afterwards every accepted record is at its target or in a DLQ with its reason; replaying
the DLQs (``mmctl dlq replay --all --execute``) delivers the rest; nothing is created,
posted or confirmed twice, and no object at Bitrix24 is ever written an older version
after a newer one (the emulator's call log is the order of writes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.chaos.load import Laps, MixedLoad, account, chaos_stack, dlq_entries, settle
from tests.chaos.report import keep_logs

pytestmark = pytest.mark.e2e

#: Storm seconds by chaos mode.
SIZES = {"short": 15, "quick": 20, "full": 60}
B24_MIX = {
    "query_limit": 3,
    "operation_time_limit": 1,
    "overload_limit": 1,
    "server_error": 2,
    "slow": 2,
    "timeout": 0.5,
    "reset": 1,
    "reset_after_write": 1,
}
ONEC_MIX = {
    "query_limit": 2,
    "server_error": 2,
    "slow": 2,
    "timeout": 0.5,
    "reset": 1,
    "reset_after_write": 1,
}


@pytest.fixture
def stack(pipeline):
    # A short retry budget, so the storm outlasts some changes' retries and they land in a
    # DLQ (the replay is part of the scenario); a short circuit cool-down for the same test
    # length as production's proportions.
    stack = chaos_stack(pipeline, max_attempts=6, budget_s=10)
    quick = {"cool_down_s": 2.0, "max_cool_down_s": 8.0}
    s = stack.settings
    # The longest backoff in the budget's proportion too (production: 30 s in 300 s): at
    # 30 s in a 10 s budget, a parked change (and every change of its entity queued behind
    # it, replays included) waited half a minute for an attempt that came too late anyway.
    s = s.model_copy(update={"retry": s.retry.model_copy(update={"max_delay_s": 2.0})})
    stack.settings = s.model_copy(
        update={
            "bitrix24": s.bitrix24.model_copy(
                update={"circuit": s.bitrix24.circuit.model_copy(update=quick)}
            ),
            "onec": s.onec.model_copy(update={"circuit": s.onec.circuit.model_copy(update=quick)}),
        }
    )
    yield stack
    stack.stop()


def storm(url: str, **spec) -> dict:
    resp = httpx.post(f"{url}/_emulator/storm", json=spec, timeout=10)
    resp.raise_for_status()
    return resp.json()


def calm(url: str) -> dict:
    return httpx.delete(f"{url}/_emulator/storm", timeout=10).json()


# What others depend on goes first, as the runbook tells an operator: a price replayed before
# its price type (or a delivery before its order's counterparty) only waits for it again.
_REPLAY_ORDER = (
    "enrich",
    "product",
    "price_type",
    "warehouse",
    "counterparty",
    "employee",
    "price",
)


def _replay_rank(topic: str) -> tuple[int, str]:
    tail = topic.rsplit(".", 1)[-1]
    rank = next(
        (
            i
            for i, name in enumerate(_REPLAY_ORDER)
            if tail == name or (name == "enrich" and ".enrich." in topic)
        ),
        len(_REPLAY_ORDER),
    )
    return rank, topic


def replay_all(stack) -> tuple[dict[str, int], frozenset[str]]:
    """``mmctl dlq replay <topic> --all --execute`` for every DLQ that holds records: the
    records per topic, and the coordinates of the DLQ records replayed."""
    entries = dlq_entries(stack)

    def replay(topic: str) -> tuple[str, int]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mmstream.cli.main",
                "dlq",
                "replay",
                topic,
                "--all",
                "--execute",
                "--output",
                "json",
            ],
            env={**os.environ, **stack.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (topic, done.stdout, done.stderr)
        return topic, json.loads(done.stdout)["records"]

    # Two waves: what others depend on, then the rest; the topics of a wave side by side
    # (one CLI process each: seconds apiece, one after the other they added up).
    topics = sorted({e.topic for e in entries}, key=_replay_rank)
    first = [t for t in topics if _replay_rank(t)[0] < _replay_rank("price")[0]]
    replayed: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for wave in (first, [t for t in topics if t not in first]):
            replayed.update(pool.map(replay, wave))
    return replayed, frozenset(e.coordinates for e in entries)


def test_target_storms_end_delivered_or_dead_lettered_and_replay_delivers_the_rest(
    stack, chaos_mode, chaos_report
):
    storm_s = SIZES[chaos_mode]
    began = time.monotonic()
    laps = Laps()
    stack.start_everything()
    laps("start")
    load = MixedLoad(stack).start(pace_s=0.6)
    try:
        stack.wait_sql("SELECT count(*) FROM customer_order", lambda r: r[0][0] > 0, 90)
        laps("first order stored")
        storm(
            stack.emulator_url,
            duration_s=storm_s,
            rate=0.5,
            mix=B24_MIX,
            slow_s=1.0,
            timeout_s=6.0,
            seed=1,
        )
        storm(
            stack.onec_url,
            duration_s=storm_s,
            rate=0.5,
            mix=ONEC_MIX,
            slow_s=1.0,
            timeout_s=6.0,
            seed=2,
        )
        time.sleep(storm_s)
    finally:
        load.stop()
        dealt = {"bitrix24": calm(stack.emulator_url), "onec": calm(stack.onec_url)}
    laps("storm")
    waited = settle(stack, load, timeout_s=240, quiet_s=30)
    laps("settle")
    stack.assert_alive()
    before = account(stack, load.offers)
    entries = dlq_entries(stack)
    no_reason = [e.coordinates for e in entries if e.code == "unknown" or not e.stage]
    laps("account")

    # As an operator would: replay, look again, replay what came back (a change whose
    # dependency was still on its way is parked again as dependency_pending) — at most 3
    # rounds; none when nothing was dead-lettered.
    replayed: dict[str, int] = {}
    rounds, seen, after = 0, len(entries), before
    while entries and rounds < 3:
        rounds += 1
        done, coordinates = replay_all(stack)
        for topic, n in done.items():
            replayed[topic] = replayed.get(topic, 0) + n
        laps("replay")
        # Until each replayed record is at its target or dead-lettered again.
        waited += settle(stack, load, timeout_s=180, quiet_s=30, replayed=coordinates)
        laps("settle after replay")
        after = account(stack, load.offers)
        now_seen = len(dlq_entries(stack))
        laps("account")
        if after.at_target == after.accepted or now_seen == seen:
            break
        seen = now_seen
    verdict = (
        before.lost == 0
        and not no_reason
        and after.at_target == after.accepted
        and after.accepted == after.offered
        and after.duplicated == 0
        and not after.order_violations
    )
    hits = {t: d.get("hits", {}) for t, d in dealt.items()}
    chaos_report.record(
        "target storms",
        verdict=verdict,
        **{**after.figures(), "dead_lettered": before.dead_lettered},
        seconds=time.monotonic() - began,
        notes=f"{storm_s}s storm on both emulators (half the calls hit: {hits}); "
        f"before replay {before.at_target} of {before.accepted} at target, "
        f"{before.dead_lettered} DLQ records ({before.dlq_reasons}); replayed {sum(replayed.values())} DLQ records "
        f"in {rounds} round(s); "
        f"settled in {waited:.0f}s; seconds per phase {laps.seconds}",
        phases=laps.seconds,
        storm_hits=hits,
        dlq_before=before.dlq_reasons,
        replayed=replayed,
        lost_before_replay=before.lost_records,
        lost_after_replay=after.lost_records,
        duplicates=after.duplicates,
        order_violations=after.order_violations,
        dlq_without_reason=no_reason,
    )
    print(
        json.dumps(
            {
                "duplicates": after.duplicates,
                "lost": after.lost_records,
                "order": after.order_violations,
            },
            ensure_ascii=False,
            indent=1,
        )
    )
    kept = None if verdict else keep_logs("target storms", stack.log_dir)
    assert verdict, (
        kept,
        after.figures(),
        after.not_at_target[:10],
        after.dlq_reasons,
        before.lost_records[:10],
        after.lost_records[:10],
        after.duplicates,
        after.order_violations[:10],
        no_reason[:5],
        stack.logs(),
    )
