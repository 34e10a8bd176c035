"""The client against the emulator over real HTTP: the circuit breaker (OVERLOAD_LIMIT opens
it at once, consecutive failures open it, a probe closes it) and per-method time blocks."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import OperationTimeLimit, OverloadLimit, ServerError
from mmstream.circuit import State
from mmstream.errors import CircuitOpen, classify
from mmstream.settings import Bitrix24Settings

HOOK = "/rest/1/testhook/"
LIST = {"select": ["id", "iblockId"], "filter": {"iblockId": 14}}


def client_for(base: str, **circuit) -> Bitrix24Client:
    return Bitrix24Client(
        Bitrix24Settings(
            webhook_url=base + HOOK,
            rate_per_s=1000.0,
            burst=1000,
            circuit={"failure_threshold": 3, "cool_down_s": 30.0, **circuit},
        )
    )


def fault(base: str, **spec) -> None:
    httpx.post(f"{base}/_emulator/faults", json=spec, timeout=10).raise_for_status()


def call_count(base: str) -> int:
    return len(httpx.get(f"{base}/_emulator/calls", timeout=10).json())


def test_overload_limit_opens_the_circuit_and_stops_calling(emulator):
    base, _ = emulator
    fault(
        base,
        method="*",
        status=503,
        error="OVERLOAD_LIMIT",
        description="REST API is blocked due to overload.",
        times=1,
    )

    async def scenario():
        async with client_for(base) as client:
            with pytest.raises(OverloadLimit) as first:
                await client.call("catalog.product.list", LIST)
            errors = []
            for _ in range(5):
                with pytest.raises(CircuitOpen) as caught:
                    await client.call("catalog.product.list", LIST)
                errors.append(caught.value)
            return first.value, errors, client.breaker.state

    first, errors, state = asyncio.run(scenario())
    assert first.alert
    assert state is State.OPEN
    # No hammering: the portal saw the one call that tripped the circuit.
    assert call_count(base) == 1
    for err in errors:
        assert classify(err).retriable and 0 < err.retry_after <= 30


def test_consecutive_failures_open_it_and_a_successful_probe_closes_it(emulator):
    base, _ = emulator
    fault(base, method="*", status=500, times=3)

    async def scenario():
        async with client_for(base, cool_down_s=0.3, max_cool_down_s=1.0) as client:
            for _ in range(3):
                with pytest.raises(ServerError):
                    await client.call("catalog.product.list", LIST)
            with pytest.raises(CircuitOpen):
                await client.call("catalog.product.list", LIST)
            await asyncio.sleep(0.35)
            probe = await client.call("catalog.product.list", LIST)
            return probe, client.breaker.state

    probe, state = asyncio.run(scenario())
    assert probe == {"products": []}
    assert state is State.CLOSED
    assert call_count(base) == 4


def test_operation_time_limit_blocks_that_method_locally_until_reset(emulator):
    base, _ = emulator
    fault(
        base,
        method="catalog.product.list",
        status=429,
        error="OPERATION_TIME_LIMIT",
        description="Method is blocked due to operation time limit.",
        reset_in_s=30,
        times=1,
    )

    async def scenario():
        async with client_for(base) as client:
            with pytest.raises(OperationTimeLimit) as first:
                await client.call("catalog.product.list", LIST)
            with pytest.raises(OperationTimeLimit) as local:
                await client.call("catalog.product.list", LIST)
            other = await client.call(
                "catalog.product.add", {"fields": {"iblockId": 14, "name": "A", "xmlId": "a"}}
            )
            return first.value, local.value, other, client.breaker.state

    first, local, other, state = asyncio.run(scenario())
    assert first.retriable and 0 < first.retry_after <= 30
    # The second refusal came from the client itself: the portal saw one list call.
    assert local.status is None and 0 < local.retry_after <= first.retry_after
    calls = httpx.get(f"{base}/_emulator/calls", timeout=10).json()
    assert [c["method"] for c in calls] == ["catalog.product.list", "catalog.product.add"]
    assert int(other["element"]["id"]) > 0  # other methods are not blocked
    assert state is State.CLOSED  # a time limit says nothing about the portal's health
