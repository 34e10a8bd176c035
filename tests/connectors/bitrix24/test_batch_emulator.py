"""The batch packer against the emulator over real HTTP: per-command failures, retrying only
what failed, and concurrent submitters packed into full batches. (A lost create answer
without a duplicate is the egress actions' lookup-before-add: tests/stages/egress/
test_relink.py.)"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from connectors.bitrix24.batch import (
    BatchPacker,
    Command,
    Failed,
    Ok,
    execute,
)
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import InvalidRequest, ServerError
from mmstream.settings import Bitrix24Settings

HOOK = "/rest/1/testhook/"


def client_for(base: str, **settings) -> Bitrix24Client:
    settings.setdefault("rate_per_s", 1000.0)
    settings.setdefault("burst", 1000)
    return Bitrix24Client(Bitrix24Settings(webhook_url=base + HOOK, **settings))


def fault(base: str, **spec) -> None:
    httpx.post(f"{base}/_emulator/faults", json=spec, timeout=10).raise_for_status()


def calls(base: str, method: str) -> list[dict]:
    return httpx.get(f"{base}/_emulator/calls", params={"method": method}, timeout=10).json()


def products(base: str) -> list[dict]:
    return httpx.get(f"{base}/_emulator/products", timeout=10).json()


def test_one_batch_call_maps_results_and_failures_back_per_command(emulator):
    base, _ = emulator

    async def scenario():
        async with client_for(base) as client:
            added = await client.call(
                "catalog.product.add", {"fields": {"iblockId": 14, "name": "A", "xmlId": "a"}}
            )
            first = int(added["element"]["id"])
            fault(base, method="catalog.product.get", status=500, times=1, entity_id=str(first))
            out = await execute(
                client,
                {
                    "get-a": Command("catalog.product.get", {"id": first}),
                    "get-missing": Command("catalog.product.get", {"id": 999}),
                    "list": Command(
                        "catalog.product.list",
                        {"select": ["id", "iblockId"], "filter": {"iblockId": 14}},
                    ),
                },
            )
            # Only the failed transient command is run again.
            again = await execute(client, {"get-a": Command("catalog.product.get", {"id": first})})
            return first, out, again

    first, out, again = asyncio.run(scenario())
    assert len(calls(base, "batch")) == 2
    assert isinstance(out["get-a"], Failed) and isinstance(out["get-a"].error, ServerError)
    assert out["get-a"].error.retriable
    assert isinstance(out["get-missing"].error, InvalidRequest)
    assert isinstance(out["list"], Ok) and out["list"].total == 1
    assert isinstance(again["get-a"], Ok) and again["get-a"].result["product"]["id"] == first


def test_more_than_fifty_commands_take_several_batches(emulator):
    base, _ = emulator

    async def scenario():
        async with client_for(base) as client:
            return await execute(
                client,
                {
                    f"k{i}": Command(
                        "catalog.product.add",
                        {"fields": {"iblockId": 14, "name": f"p{i}", "xmlId": f"g{i}"}},
                    )
                    for i in range(120)
                },
            )

    out = asyncio.run(scenario())
    assert all(isinstance(o, Ok) for o in out.values())
    assert [len(c["params"]["cmd"]) for c in calls(base, "batch")] == [50, 50, 20]
    assert len(products(base)) == 120


def test_packer_coalesces_concurrent_submitters_into_full_batches(emulator):
    base, _ = emulator

    async def scenario():
        # 1 request/s with no burst: while one batch waits for its slot the next fills up.
        async with client_for(base, rate_per_s=1.0, burst=1) as client:
            packer = BatchPacker(client, linger_s=0.05)
            outcomes = await asyncio.gather(
                *(
                    packer.submit(
                        Command(
                            "catalog.product.add",
                            {"fields": {"iblockId": 14, "name": f"p{i}", "xmlId": f"g{i}"}},
                        )
                    )
                    for i in range(100)
                )
            )
            await packer.aclose()
            return outcomes

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, Ok) for o in outcomes)
    sizes = [len(c["params"]["cmd"]) for c in calls(base, "batch")]
    assert sum(sizes) == 100 and len(sizes) == 2
    ids = sorted(o.result["element"]["id"] for o in outcomes)
    assert ids == list(range(1, 101))


@pytest.mark.parametrize(
    "error, cls",
    [
        ("QUERY_LIMIT_EXCEEDED", "QueryLimitExceeded"),
        ("OPERATION_TIME_LIMIT", "OperationTimeLimit"),
    ],
)
def test_a_limited_command_inside_a_batch_steers_the_budget(emulator, error, cls):
    base, _ = emulator

    async def scenario():
        async with client_for(base, rate_per_s=100.0, burst=10) as client:
            fault(base, method="catalog.product.list", status=503, error=error, times=1)
            out = await execute(
                client,
                {
                    "l": Command(
                        "catalog.product.list",
                        {"select": ["id", "iblockId"], "filter": {"iblockId": 14}},
                    )
                },
            )
            return out, client.budget.rate_per_s, client.budget.blocked_for("catalog.product.list")

    out, rate, blocked = asyncio.run(scenario())
    assert type(out["l"].error).__name__ == cls and out["l"].error.retriable
    if cls == "QueryLimitExceeded":
        assert rate < 100.0 and blocked == 0.0
    else:
        assert rate == pytest.approx(100.0) and blocked > 0
