"""Scale-out: several workers of one consumer group share the partitions and survive a member
joining, one leaving gracefully (SIGTERM) and one killed (SIGKILL) while a steady load
flows — without losing a change or applying one twice."""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict

import pytest

from tests.support.processes import Proc, eventually
from tests.support.scale import (
    SteadyLoad,
    describe_group,
    egress_partitions,
    log_lines,
    product_deliveries,
    sink_partitions,
)
from tests.support.stack import Pipeline
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e
PARTITIONS = set(range(6))  # raw.onec.product / egress.bitrix24.product in topics.yaml


def _until(
    pipeline: Pipeline,
    check,
    timeout_s: float,
    message: str,
    describe=None,
    interval_s: float = 0.5,
):
    """Wait for ``check()``; on timeout fail with ``describe()`` (what differs) and the logs."""

    def alive_check():
        pipeline.assert_alive()
        return check()

    try:
        return eventually(alive_check, timeout_s, interval_s=interval_s, message=message)
    except AssertionError as exc:
        detail = f"\n{describe()}" if describe else ""
        raise AssertionError(f"{exc}{detail}\n{pipeline.logs()}") from None


def _assert_group_shared(pipeline: Pipeline, group: str, members: int) -> None:
    """On Apache Kafka the group description names every member and its partitions; the
    embedded broker returns no members (tansu.md), so there the worker logs are the proof."""
    view = describe_group(pipeline, group)
    if view.members:
        assert len(view.members) == members, view
        assert all(view.members.values()), f"a member without partitions: {view}"
        assert set().union(*view.members.values()) == PARTITIONS, view


def _graceful_stop(proc: Proc) -> None:
    # A worker finishes its batch before it leaves: under the portal's rate limit an egress
    # batch takes many seconds, so the grace period is long. SIGKILL after it is a failure.
    proc.stop(grace_s=120)
    assert proc.popen.returncode == 0, f"{proc.name} did not stop cleanly on SIGTERM\n{proc.tail()}"


def _assert_exactly_once(pipeline: Pipeline, load: SteadyLoad) -> None:
    """Every accepted change is stored, published and delivered; nothing twice."""
    products = load.products
    expected_rows = {ref: (p.versions[-1], p.name) for ref, p in products.items()}
    all_versions = {(ref, v) for ref, p in products.items() for v in p.versions}

    # PostgreSQL: each product once, at its latest version.
    pipeline.wait_sql(
        "SELECT id::text, version, name FROM product",
        lambda rows: {r[0]: (r[1], r[2]) for r in rows} == expected_rows,
        120,
    )
    assert pipeline.sql("SELECT count(*) FROM product") == [(len(products),)]

    # Outbox: every version once.
    outbox = pipeline.sql("SELECT entity_id, version, event_id::text FROM outbox")
    per_version = Counter((r[0], r[1]) for r in outbox)
    assert set(per_version) == all_versions
    assert max(per_version.values()) == 1, [k for k, n in per_version.items() if n > 1][:5]
    event_ids = {r[2]: (r[0], r[1]) for r in outbox}

    # norm.product: every change; a repeated record (at-least-once relay) repeats its event id.
    norm = count_records(
        pipeline.settings, "norm.product", expect_at_least=len(outbox), timeout_s=120
    )
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for msg in norm:
        headers = {k: v.decode() for k, v in msg.headers()}
        seen[headers["ce_id"]].add((msg.key().decode(), headers["mm.version"]))
    assert set(seen) == set(event_ids), "norm.product lost or invented changes"
    assert all(versions == {event_ids[eid]} for eid, versions in seen.items()), (
        "one event id carried different changes"
    )

    # Bitrix24: every product delivered at its latest version, created exactly once.
    expected_names = sorted((ref, p.name) for ref, p in products.items())

    def held():
        return sorted((p["xmlId"], p["name"]) for p in pipeline.emulator_products())

    def differences():
        have = held()
        dup = [x for x, n in Counter(ref for ref, _ in have).items() if n > 1]
        return (
            f"products held twice: {dup[:5]}; missing or stale: "
            f"{sorted(set(expected_names) - set(have))[:5]}"
        )

    def settled():  # more products than expected is a duplicate create: no use waiting
        have = held()
        return have == expected_names or len(have) > len(expected_names)

    _until(
        pipeline,
        settled,
        150,
        "every product once, at its latest version, in Bitrix24",
        differences,
    )
    assert held() == expected_names, differences()
    time.sleep(2)  # a duplicate create in flight would land now
    creates = Counter(
        c["params"]["fields"]["xmlId"]
        for c in pipeline.emulator_calls("catalog.product.add")
        if c["status"] == 200
    )
    assert set(creates) == set(products)
    assert max(creates.values()) == 1, [k for k, n in creates.items() if n > 1][:5]
    assert len(pipeline.emulator_products()) == len(products)


def test_sink_workers_share_partitions_and_survive_join_leave_and_kill(pipeline):
    pipeline.start_emulator()
    first, second = pipeline.start_sink("sink-1"), pipeline.start_sink("sink-2")
    pipeline.start_egress()
    pipeline.start_bridge()
    load = SteadyLoad(pipeline)
    load.start()
    try:
        # Both members of the group get partitions and store batches from them.
        _until(
            pipeline,
            lambda: sink_partitions(first) and sink_partitions(second),
            120,
            "both sinks store batches",
        )
        _assert_group_shared(pipeline, pipeline.settings.streams.entity_sink_group, 2)

        third = pipeline.start_sink("sink-3")  # a member joins
        _until(pipeline, lambda: sink_partitions(third), 120, "the joining sink stores batches")

        _graceful_stop(first)  # a member leaves
        stored = _batches(second)
        # Kill right after a batch is stored: its offsets are most likely not committed yet.
        _until(
            pipeline,
            lambda: _batches(second) > stored,
            120,
            "sink-2 stores after the leave",
            interval_s=0.05,
        )
        second.kill(signal.SIGKILL)  # a member dies mid-stream
        load.wait_batches(15)
    finally:
        load.stop()
    assert load.batches > 0 and len(load.products) > 0
    assert PARTITIONS <= {p.partition for p in load.products.values()}
    assert sink_partitions(first) | sink_partitions(second) | sink_partitions(third) == PARTITIONS
    _assert_exactly_once(pipeline, load)


def test_egress_workers_share_partitions_and_survive_join_leave_and_kill(pipeline):
    pipeline.start_emulator()
    pipeline.start_sink()
    first, second = pipeline.start_egress("egress-1"), pipeline.start_egress("egress-2")
    pipeline.start_bridge()
    load = SteadyLoad(pipeline)
    load.start()

    def delivered_from(proc):
        return egress_partitions(proc, {ref: p.partition for ref, p in list(load.products.items())})

    try:
        _until(
            pipeline,
            lambda: delivered_from(first) and delivered_from(second),
            120,
            "both egress workers deliver",
        )
        _assert_group_shared(pipeline, pipeline.settings.streams.egress_group, 2)

        third = pipeline.start_egress("egress-3")
        _until(pipeline, lambda: delivered_from(third), 120, "the joining egress worker delivers")

        _graceful_stop(first)
        delivered = _deliveries(second)
        # Kill mid-batch: the batch is acknowledged only when all of it is delivered.
        _until(
            pipeline,
            lambda: _deliveries(second) > delivered,
            120,
            "egress-2 delivers after the leave",
            interval_s=0.05,
        )
        second.kill(signal.SIGKILL)
        load.wait_batches(15)
    finally:
        load.stop()
    _assert_exactly_once(pipeline, load)
    assert pipeline.sql("SELECT count(*) FROM egress_delivery") == [(len(load.products),)]
    assert count_records(pipeline.settings, "dlq.egress.bitrix24.product", timeout_s=10) == []


def _batches(proc: Proc) -> int:
    return len(log_lines(proc, "batch stored"))


def _deliveries(proc: Proc) -> int:
    return len(product_deliveries(proc))
