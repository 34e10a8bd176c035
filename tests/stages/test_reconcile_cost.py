"""What the reconcile costs the portal: requests per entity for every entity compared with
Bitrix24 (master data and delivery tasks), counted by the emulator (its call log is what
its budget charges), through the project's client, in-process.

One list call per page of 50, plus the empty page that ends a listing whose size is a
multiple of 50: ``ceil((n + 1) / 50)`` requests per family. ``MM_RECONCILE_COST_N`` (default
120) sets the objects per family; the figure for the issue's note was taken with 1000.
"""

from __future__ import annotations

import asyncio
import math
import os
import uuid

import httpx

from stages.reconcile.bitrix24 import list_family, specs

N = int(os.environ.get("MM_RECONCILE_COST_N", "120"))


def test_reconcile_requests_per_entity_for_every_bitrix24_entity():
    from connectors.bitrix24.client import Bitrix24Client
    from devstack.emulators.bitrix24 import create_app
    from mmstream.settings import Bitrix24Settings

    base, hook = "http://portal.test", f"/rest/7/{uuid.uuid4().hex}/"
    app = create_app(webhook_path=hook, rate_per_s=1e6, burst=10**6)
    every = specs(14)

    async def fill(client) -> None:
        keys = [str(uuid.uuid4()) for _ in range(N)]
        product = (
            await client.call(
                "catalog.product.add", {"fields": {"iblockId": 14, "name": "Чай", "xmlId": keys[0]}}
            )
        )["element"]["id"]
        for n, key in enumerate(keys):
            if n:
                await client.call(
                    "catalog.product.add",
                    {"fields": {"iblockId": 14, "name": f"Чай {n}", "xmlId": key}},
                )
            await client.call(
                "catalog.store.add",
                {"fields": {"title": f"Склад {n}", "address": "Москва", "xmlId": key}},
            )
            ptype = (
                await client.call(
                    "catalog.priceType.add",
                    {"fields": {"name": f"Цена {n}", "xmlId": key, "base": "N", "sort": 100 + n}},
                )
            )["priceType"]["id"]
            await client.call(
                "catalog.price.add",
                {
                    "fields": {
                        "productId": product,
                        "catalogGroupId": ptype,
                        "price": 10 + n,
                        "currency": "RUB",
                    }
                },
            )
            family = "company" if n % 2 else "contact"
            title = {"TITLE": f"ООО {n}"} if family == "company" else {"NAME": f"Иван {n}"}
            await client.call(
                f"crm.{family}.add",
                {"fields": {**title, "ORIGIN_ID": key, "ORIGINATOR_ID": "mmstream"}},
            )
            await client.call(
                "tasks.task.add",
                {"fields": {"TITLE": f"Доставка {n}", "RESPONSIBLE_ID": 1, "XML_ID": key}},
            )

    async def scenario() -> dict[str, tuple[int, int]]:
        client = Bitrix24Client(
            Bitrix24Settings(webhook_url=base + hook, rate_per_s=1e6, burst=1000),
            transport=httpx.ASGITransport(app=app),
        )
        calls = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
        async with client, calls:
            await fill(client)
            out: dict[str, tuple[int, int]] = {}
            for name, spec in every.items():
                before = len((await calls.get("/_emulator/calls")).json())
                rows = 0
                for family in spec.families:
                    rows += len(await list_family(client, family))
                made = len((await calls.get("/_emulator/calls")).json()) - before
                out[name] = (rows, made)
            return out

    measured = asyncio.run(scenario())
    total_rows = sum(rows for rows, _ in measured.values())
    total_calls = sum(calls for _, calls in measured.values())
    print(
        f"\nreconcile listing cost, {N} objects per entity: "
        + ", ".join(
            f"{name} {calls} requests / {rows} rows" for name, (rows, calls) in measured.items()
        )
        + f"; {1000 * total_calls / total_rows:.1f} portal requests per 1,000 entities"
    )
    assert set(measured) >= {
        "product",
        "warehouse",
        "price_type",
        "counterparty",
        "price",
        "delivery_task",
    }
    for name, (rows, calls) in measured.items():
        assert rows == N, name
        pages = sum(
            math.ceil((len_ + 1) / 50)
            for len_ in ([N // 2, N - N // 2] if name == "counterparty" else [N])
        )
        assert calls == pages, (name, calls, pages)
