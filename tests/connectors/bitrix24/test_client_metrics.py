"""What the Bitrix24 client tells Prometheus, against the emulator over real HTTP: the error
code behind the OVERLOAD_LIMIT alert, and the time calls wait for the rate budget."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import OverloadLimit
from mmstream.settings import Bitrix24Settings

LIST = {"select": ["id", "iblockId"], "filter": {"iblockId": 14}}


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_overload_limit_is_counted_under_its_code(emulator):
    base, _ = emulator
    before = _value("mm_egress_errors_total", target="bitrix24", code="bitrix24_overload_limit")
    httpx.post(
        f"{base}/_emulator/faults",
        json={
            "method": "*",
            "status": 503,
            "error": "OVERLOAD_LIMIT",
            "description": "blocked",
            "times": 1,
        },
        timeout=10,
    ).raise_for_status()

    async def scenario():
        settings = Bitrix24Settings(
            webhook_url=f"{base}/rest/1/testhook/", rate_per_s=1000.0, burst=1000
        )
        async with Bitrix24Client(settings) as client:
            with pytest.raises(OverloadLimit):
                await client.call("catalog.product.list", LIST)

    asyncio.run(scenario())
    assert (
        _value("mm_egress_errors_total", target="bitrix24", code="bitrix24_overload_limit")
        == before + 1
    )


def test_every_call_observes_its_wait_for_the_rate_budget(emulator):
    base, _ = emulator
    count_before = _value("mm_egress_rate_limit_wait_seconds_count", target="bitrix24")
    sum_before = _value("mm_egress_rate_limit_wait_seconds_sum", target="bitrix24")

    async def scenario():
        # A bucket of 1 at 5/s: the second and third calls must wait ~0.2 s each.
        settings = Bitrix24Settings(webhook_url=f"{base}/rest/1/testhook/", rate_per_s=5.0, burst=1)
        async with Bitrix24Client(settings) as client:
            for _ in range(3):
                await client.call("catalog.product.list", LIST)

    asyncio.run(scenario())
    assert _value("mm_egress_rate_limit_wait_seconds_count", target="bitrix24") == count_before + 3
    assert _value("mm_egress_rate_limit_wait_seconds_sum", target="bitrix24") - sum_before >= 0.3
