"""Chaos: the broker stops under ingress load and comes back, the bridge and the workers
keep running. Two ways:

- ``pause``: the broker process is frozen (SIGSTOP) for the outage and thawed (SIGCONT):
  unreachable, as a broker or network outage of a real cluster is, with its data kept. Every
  2xx must end in PostgreSQL: 0 lost, nothing explained away.
- ``restart``: the embedded broker is stopped and started, which on this memory-only broker
  is a NEW, EMPTY cluster (topics, records and group offsets gone) — something a real Kafka
  cluster does not do. What it loses is reported, split by when it was accepted:

While it is gone the bridge answers 503 with Retry-After, never a 2xx; afterwards the
topics are recreated (the embedded broker keeps nothing across a restart: a new, empty
cluster, see /work/shared/tansu.md) and everything flows again without restarting a
process. Every 2xx must end in PostgreSQL, except what the broker itself lost: records
accepted before the stop and not yet consumed. Those are listed in the row's notes as an
expected loss (the reconcile job that would repair them does not exist yet), never hidden.

The test runs its own broker: stopping the session's would break every other test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from devstack.stack.broker import EmbeddedBroker
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.topics import load_catalog
from tests.chaos.load import WORKERS, Laps, MixedLoad, account, chaos_stack, settle
from tests.support.processes import eventually

pytestmark = pytest.mark.e2e

#: (load before the stop, outage, load after the restart), seconds, by chaos mode.
SIZES = {"short": (4, 10, 4), "quick": (4, 10, 4), "full": (10, 30, 20)}


@pytest.fixture
def own_broker(tmp_path):
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "own-broker.log").start()
    yield broker
    broker.stop()


@pytest.fixture
def settings(settings, own_broker):
    """The test's settings on its own broker (the session's keeps running for the others)."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": own_broker.bootstrap})
        }
    )


@pytest.fixture
def stack(pipeline):
    stack = chaos_stack(pipeline)
    yield stack
    stack.stop()


def reconcile(stack) -> str:
    """``mmctl reconcile --target bitrix24 --repair`` as an operator runs it after the
    broker's loss (no in-flight grace: the load has stopped); its summary."""
    env = {**stack.env, "MM_RECONCILE__IN_FLIGHT_GRACE_S": "0"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmstream.cli.main",
            "reconcile",
            "--target",
            "bitrix24",
            "--repair",
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return f"exit {done.returncode}: {done.stderr[-300:]}"
    kinds = Counter(d.get("kind") for d in report.get("drift", []))
    return f"exit {done.returncode}, drift {dict(kinds)}, {len(report.get('repairs', []))} repairs"


@pytest.mark.parametrize("how", ["pause", "restart"])
def test_broker_outage_gives_503_and_every_2xx_is_stored_or_explained(
    stack, own_broker, chaos_mode, chaos_report, how
):
    if how == "restart" and chaos_mode != "full":
        pytest.skip(
            "the restart form runs under the full make chaos (its losses are the "
            "embedded broker's, reported there); shorter runs hold the pause form"
        )
    before_s, outage_s, after_s = SIZES[chaos_mode]
    began = time.monotonic()
    laps = Laps()
    stack.start_everything()
    laps("start")
    load_began = time.monotonic()
    load = MixedLoad(stack).start(pace_s=0.5)
    try:
        # The stop hits a flowing pipeline, not workers still joining their groups, after
        # before_s of load at least (the wait for the first order counts towards it).
        stack.wait_sql("SELECT count(*) FROM customer_order", lambda r: r[0][0] > 0, 90)
        time.sleep(max(0.0, before_s - (time.monotonic() - load_began)))
        stopped_at = time.monotonic()
        if how == "pause":
            os.kill(own_broker._proc.pid, signal.SIGSTOP)
            try:
                time.sleep(outage_s)
            finally:
                os.kill(own_broker._proc.pid, signal.SIGCONT)
            restarted_at = time.monotonic()
        else:
            own_broker.stop()
            time.sleep(outage_s)
            own_broker.start()
            restarted_at = time.monotonic()
            # An empty cluster: the operator (or the deployment) provisions the topics again.
            eventually(
                lambda: apply(stack.settings, load_catalog(stack.settings.topics_file)) or True,
                30,
                message="topics recreated",
            )
        time.sleep(after_s)
    finally:
        load.stop()
    laps("load and outage")
    waited = settle(stack, load, timeout_s=180, quiet_s=40)
    laps("settle")
    repair = None
    if how == "restart":
        # The safety net: what the new cluster lost after it was stored is found by the
        # reconcile job (PostgreSQL against Bitrix24) and re-published through the pipeline.
        lost_before = len(account(stack, load.offers, dlq=False).lost_records)
        repair = reconcile(stack)
        waited += settle(stack, load, timeout_s=180, quiet_s=40)
    died = [n for n in [*WORKERS, "bridge"] if not stack.procs[n].alive()]

    offers = load.offers
    bad_answers = [
        (o.entity, o.status, o.retry_after, o.extra.get("error"))
        for o in offers
        if not o.accepted and (o.status != 503 or not o.retry_after)
    ]
    # A 2xx for a request made and answered while the broker was down would be a lie (one
    # held across the restart and acknowledged after it is fine). By when the request was
    # sent, not only when its answer came: on a loaded machine the answer to a produce the
    # broker acknowledged just before the stop can come more than a second later.
    acked_while_down = [
        o for o in offers if o.accepted and stopped_at + 0.2 < o.at and o.answered_at < restarted_at
    ]
    # What the broker held at the stop (raw records not yet consumed, egress records not
    # yet delivered) is gone with it: an expected loss of what was accepted before the stop.
    # A pause loses nothing: nothing is explained away. A restart of the memory-only broker
    # is a new cluster: what it held is gone, and so may be records accepted right after it
    # (produced before the topics were recreated, into topics the broker auto-created, or
    # below the consumers' positions from the old cluster) — reported, split, never hidden.
    explained = set() if how == "pause" else {id(o) for o in offers if o.accepted}
    tally = account(stack, offers, explained=explained)
    gone = [r for r in tally.lost_records if r["explained"]]
    after_restart = [r for r in gone if r.get("answered_at", 0) > restarted_at]
    refused = sum(1 for o in offers if not o.accepted)
    verdict = (
        not bad_answers
        and not acked_while_down
        and tally.lost == 0
        and not died
        and tally.duplicated == 0
        and refused > 0
    )
    chaos_report.record(
        f"broker outage ({how})",
        verdict=verdict,
        **tally.figures(),
        seconds=time.monotonic() - began,
        notes=f"broker {'frozen' if how == 'pause' else 'stopped and restarted empty'} "
        f"{outage_s}s; {refused} answers 503+Retry-After; "
        + (
            f"{len(gone)} accepted records lost with the memory-only broker's restart "
            f"({len(gone) - len(after_restart)} accepted before the stop, "
            f"{len(after_restart)} right after the restart; "
            f"{sum(not r['stored'] for r in gone)} never stored, "
            f"{sum(r['stored'] for r in gone)} stored but their egress records gone "
            f"after `mmctl reconcile --repair`, which brought back "
            f"{lost_before - len(gone)} of {lost_before}: {repair}) — records never "
            "stored are not in PostgreSQL to reconcile from (only a re-read of 1С, "
            "which this load does not write, could bring them); not counted in lost; "
            if how == "restart"
            else ""
        )
        + f"settled in {waited:.0f}s without restarting a process; died: {died or 'none'}",
        phases=laps.seconds,
        explained_loss=gone,
        bad_answers=bad_answers,
        acked_while_down=len(acked_while_down),
        died=died,
        duplicates=tally.duplicates,
        dlq_reasons=tally.dlq_reasons,
    )
    print(
        json.dumps(
            {
                "unexplained": [r for r in tally.lost_records if not r["explained"]],
                "explained": gone,
            },
            indent=1,
        )
    )
    assert verdict, (
        [r for r in tally.lost_records if not r["explained"]][:20],
        bad_answers[:10],
        len(acked_while_down),
        died,
        tally.duplicates,
        stack.logs(),
    )
