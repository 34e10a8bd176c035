"""Poison egress records (design.md invariants 7 and 9): a record that cannot be read or
handled — invalid JSON, not an object, no outbox id, fields the action cannot use, a
permanent refusal by the target — goes to its ``dlq.egress.*`` topic with the reason, and
the worker goes on (the next changes, of other entities and of the same one, are
delivered). Real PostgreSQL, the embedded broker and the Bitrix24 emulator (ASGI)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from devstack.emulators.bitrix24 import create_app
from mmstream.db.engine import async_engine
from mmstream.dlq.format import failure_headers
from mmstream.kafka.admin import apply
from mmstream.kafka.producer import AckedProducer
from mmstream.retry import RetryPolicy
from mmstream.topics import TopicCatalog, load_catalog
from stages.egress.actions import Targets
from stages.egress.bitrix24_product import ProductAction
from stages.egress.delivery import EntityEgress
from stages.outbox.relay import OUTBOX_ID
from stages.source_record import SourceRecord
from tests.stages.egress.test_lease_fencing import BASE, HOOK, client_for, product_record
from tests.support.topics import count_records

DLQ = "dlq.egress.bitrix24.product"


def raw(key: str, value: bytes, offset: int, *, outbox: bool = True) -> SourceRecord:
    headers = [
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"ru.mastermobile.product.upsert.v1"),
    ]
    if outbox:
        headers.append((OUTBOX_ID, str(offset).encode()))
    return SourceRecord(
        topic="egress.bitrix24.product",
        partition=0,
        offset=offset,
        key=key.encode(),
        value=value,
        headers=headers,
    )


def test_poison_records_are_dead_lettered_with_their_reason_and_the_worker_goes_on(settings):
    catalog = load_catalog(settings.topics_file)
    apply(settings, TopicCatalog(topics={DLQ: catalog[DLQ]}, copartition_groups={}))
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)
    ids = [str(uuid.uuid4()) for _ in range(6)]
    refused, good = ids[4], ids[5]
    batch = [
        raw(ids[0], b"{not json", 1),
        raw(ids[1], b"[1, 2]", 2),
        raw(ids[2], json.dumps({"id": ids[2], "name": "x"}).encode(), 3, outbox=False),
        # Unknown fields, and none the action needs.
        raw(ids[3], json.dumps({"id": ids[3], "colour": "red"}).encode(), 4),
        product_record(refused, 5, "refused"),
        product_record(good, 6, "good"),
        product_record(ids[3], 7, "fixed"),  # the poisoned entity is not blocked
    ]

    async def main():
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        await admin.post(
            "/_emulator/faults",
            json={
                "method": "catalog.product.add",
                "status": 400,
                "error": "ERROR_CORE",
                "description": "Поле name заполнено неверно",
                "xml_id": refused,
            },
        )
        engine = async_engine(settings)
        client = client_for(app)
        producer = AckedProducer(settings.kafka, client_id="poison-test")
        try:
            targets = Targets(settings=settings, bitrix24=client, onec=None, producer=producer)
            egress = EntityEgress(
                engine,
                ProductAction(targets),
                producer,
                RetryPolicy.from_settings(settings.retry),
                settings.topic(DLQ),
            )
            outcomes = await egress.deliver_all(batch)
            products = (await admin.get("/_emulator/products")).json()
            return outcomes, {p["xmlId"]: p["name"] for p in products}
        finally:
            producer.close()
            await client.aclose()
            await admin.aclose()
            await engine.dispose()

    outcomes, products = asyncio.run(main())
    assert outcomes == ["dead_lettered"] * 5 + ["delivered", "delivered"]
    assert products == {good: "good", ids[3]: "fixed"}
    dead = count_records(settings, DLQ, expect_at_least=5)
    reasons = {
        int(failure_headers(m.headers())["source.offset"]): failure_headers(m.headers())
        for m in dead
    }
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert all(r["stage"] == "egress" and r["error.retriable"] == "false" for r in reasons.values())
    assert "not an egress product record" in reasons[1]["error.message"]
    assert "not an egress product record" in reasons[2]["error.message"]
    assert OUTBOX_ID in reasons[3]["error.message"]
    assert (reasons[4]["error.class"], reasons[4]["error.message"]) == ("KeyError", "'name'")
    assert reasons[5]["error.code"] == "bitrix24_invalid_request"
    assert "ERROR_CORE" in reasons[5]["error.message"]
    # The original bytes travel with the reason (replayable).
    assert {m.value() for m in dead} >= {b"{not json", b"[1, 2]"}
