"""The status of a courier's instant order / return written back to its deal (flow 3) when
the deal is gone from the portal (issue 14, item 2): against the emulator (ASGI, no socket).

A person deleted the deal (or the portal was reset): the status has nowhere to go and no
replay could change that, so the write is skipped with a warning and counted — it used to
be a DLQ record ``crm.deal.update: HTTP 400 Not found`` nobody could usefully replay."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import InvalidRequest
from devstack.emulators.bitrix24 import create_app
from mmstream.metrics import EGRESS_DELIVERIES
from mmstream.settings import Bitrix24Settings, Settings
from stages.egress.actions import Targets
from stages.egress.courier_documents import DEAL_GONE, InstantOrderStatus, ReturnStatus
from stages.egress.delivery import Change

HOOK = "/rest/1/statustest/"
BASE = "http://portal.test"


def run(scenario):
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        portal = Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000)
        client = Bitrix24Client(portal, transport=httpx.ASGITransport(app=app))
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        targets = Targets(
            settings=Settings(bitrix24=portal), bitrix24=client, onec=None, producer=None
        )
        try:
            return await scenario(targets, client, admin)
        finally:
            await client.aclose()
            await admin.aclose()

    return asyncio.run(main())


def change(entity: str, deal: int, **fields) -> Change:
    payload = {
        "id": "c0ffee00-0000-4000-8000-000000000001",
        "source": "onec",
        "status": "recorded",
        "onec_number": "УТ-000042",
        "number": "УТ-000043",
        "external_ids": {"bitrix24": f"deal:{deal}"},
        **fields,
    }
    return Change(
        entity=entity,
        entity_id=payload["id"],
        payload=payload,
        change="upsert",
        outbox_id=1,
        event_id="e1",
    )


@pytest.mark.parametrize("action_class", [InstantOrderStatus, ReturnStatus])
def test_a_status_for_a_deleted_deal_is_skipped_with_a_warning_not_dead_lettered(
    action_class, caplog
):
    counter = EGRESS_DELIVERIES.labels("bitrix24", action_class.entity, DEAL_GONE)
    before = counter._value.get()

    async def scenario(targets, client, admin):
        deal = int(await client.call("crm.deal.add", {"fields": {"TITLE": "Продажа"}}))
        (await admin.delete(f"/_emulator/entities/deal/{deal}")).raise_for_status()
        return deal, await action_class(targets).apply(change(action_class.entity, deal), None)

    with caplog.at_level(logging.WARNING, logger="stages.egress.courier_documents"):
        deal, result = run(scenario)
    assert result is None
    assert counter._value.get() == before + 1
    assert f"deal {deal} is gone from the portal" in caplog.text


def test_a_status_for_a_live_deal_is_written_to_its_fields():
    async def scenario(targets, client, admin):
        deal = int(await client.call("crm.deal.add", {"fields": {"TITLE": "Продажа"}}))
        result = await InstantOrderStatus(targets).apply(change("instant_order", deal), None)
        return deal, result, await client.call("crm.deal.get", {"id": deal})

    deal, result, row = run(scenario)
    flows = Settings().flows
    assert result == f"deal:{deal}"
    assert row[flows.deal_status_field] == "recorded"
    assert row[flows.deal_document_field] == "УТ-000042"


def test_a_refusal_other_than_not_found_still_fails_the_write():
    async def scenario(targets, client, admin):
        # Deal id 0 is no id at all: the portal refuses the call, not "not found" of a deal.
        await InstantOrderStatus(targets).apply(change("instant_order", 0), None)

    with pytest.raises(InvalidRequest):
        run(scenario)
