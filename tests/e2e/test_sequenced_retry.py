"""Invariant 6 end to end: a product that keeps failing leaves its partition for the delayed
path, its later changes wait behind it, the other products of the partition flow on, and
once the target recovers the failing product's changes land in order."""

from __future__ import annotations

import uuid

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from tests.support.processes import eventually
from tests.support.stack import onec_product

pytestmark = pytest.mark.e2e


def same_partition_as(key: str, partitions: int) -> str:
    """A fresh Ref_Key that lands on the same partition as ``key`` (murmur2, as the bridge)."""
    part = DefaultPartitioner()
    want = part(key.encode(), list(range(partitions)), list(range(partitions)))
    while True:
        other = str(uuid.uuid4())
        if part(other.encode(), list(range(partitions)), list(range(partitions))) == want:
            return other


def test_failing_product_waits_in_order_while_its_partition_flows(pipeline):
    # Attempts are unlimited here: the test ends the outage itself.
    pipeline.settings = pipeline.settings.model_copy(
        update={
            "retry": pipeline.settings.retry.model_copy(
                update={
                    "max_attempts": 10_000,
                    "budget_s": 3600.0,
                    "inline_attempts": 2,
                    "parked_poll_s": 0.5,
                }
            )
        }
    )
    failing = onec_product(Description="Версия 1")
    healthy = onec_product(ref=same_partition_as(failing["Ref_Key"], 6), Description="Соседний")
    pipeline.start_emulator()
    pipeline.inject_fault(
        method="catalog.product.add",
        status=503,
        error="INTERNAL_SERVER_ERROR",
        description="portal busy",
        times=100_000,
        xml_id=failing["Ref_Key"],
    )
    pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()
    assert pipeline.post_product(failing).status_code == 202
    v2 = dict(failing, DataVersion="AAAAAgAAAAA=", Description="Версия 2")
    assert pipeline.post_product(v2).status_code == 202
    assert pipeline.post_product(healthy).status_code == 202

    # The neighbour is delivered while both changes of the failing product are parked, the
    # second one behind the first without having been tried.
    pipeline.wait_sql(
        "SELECT 1 FROM egress_delivery WHERE entity_id = %s",
        lambda r: len(r) == 1,
        90,
        healthy["Ref_Key"],
    )
    parked = pipeline.wait_sql(
        "SELECT attempts, record_value IS NOT NULL FROM egress_parked WHERE entity_id = %s ORDER BY id",
        lambda r: len(r) == 2,
        60,
        failing["Ref_Key"],
    )
    assert parked[0][0] >= 2 and parked[1][0] == 0
    assert (
        pipeline.sql("SELECT 1 FROM egress_delivery WHERE entity_id = %s", failing["Ref_Key"]) == []
    )
    tried = {
        c["params"]["fields"]["name"]
        for c in pipeline.emulator_calls("catalog.product.add")
        if c["params"]["fields"]["xmlId"] == failing["Ref_Key"]
    }
    assert tried == {"Версия 1"}  # version 2 never overtook version 1

    httpx.delete(f"{pipeline.emulator_url}/_emulator/faults", timeout=10).raise_for_status()
    pipeline.wait_sql("SELECT count(*) FROM egress_parked", lambda r: r[0][0] == 0, 90)

    def landed():
        mine = [p for p in pipeline.emulator_products() if p["xmlId"] == failing["Ref_Key"]]
        return mine if mine and mine[0]["name"] == "Версия 2" else None

    try:
        (product,) = eventually(landed, 60, message="version 2 delivered")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipeline.logs()}") from None
    writes = [
        (c["method"], c["params"]["fields"]["name"])
        for c in pipeline.emulator_calls()
        if c["method"] in ("catalog.product.add", "catalog.product.update")
        and c["status"] == 200
        and c["params"].get("fields", {}).get("xmlId") == failing["Ref_Key"]
    ]
    assert writes == [("catalog.product.add", "Версия 1"), ("catalog.product.update", "Версия 2")]
