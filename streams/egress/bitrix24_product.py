"""Egress of products to Bitrix24: create-or-update by external key, in order per product.

Replays change nothing twice: ``egress_delivery`` remembers the last outbox id delivered per
product, and a create is always preceded by a crosswalk / ``xmlId`` lookup, so a timeout
followed by a retry updates the product created by the first attempt instead of adding a
second one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.bitrix24.client import Bitrix24Client
from mmstream import log as logctx
from mmstream.envelope import REQUEST_ID
from mmstream.errors import InvalidRecord, classify
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import DLQ_RECORDS, EGRESS_DELIVERIES
from streams.backoff import retry_transient
from streams.dlq.records import Failure, dead_letter
from streams.egress.retry import RetryPolicy
from streams.outbox.relay import OUTBOX_ID
from streams.records import SourceRecord

log = logging.getLogger(__name__)
TARGET = "bitrix24"

_LAST = text("SELECT last_outbox_id FROM egress_delivery "
             "WHERE target = :target AND entity = 'product' AND entity_id = :id")
_CROSSWALK = text("SELECT external_id FROM crosswalk "
                  "WHERE system = :target AND entity = 'product' AND canonical_id = :id")
_LINK = text("INSERT INTO crosswalk (system, entity, canonical_id, external_id) "
             "VALUES (:target, 'product', :id, :ext) ON CONFLICT DO NOTHING")
_DELIVERED = text(
    "INSERT INTO egress_delivery (target, entity, entity_id, last_outbox_id, last_event_id, external_id) "
    "VALUES (:target, 'product', :id, :outbox_id, :event_id, :ext) "
    "ON CONFLICT (target, entity, entity_id) DO UPDATE SET "
    "last_outbox_id = GREATEST(egress_delivery.last_outbox_id, excluded.last_outbox_id), "
    "last_event_id = excluded.last_event_id, external_id = excluded.external_id, delivered_at = now()"
)


def product_fields(product: dict) -> dict:
    """Canonical product -> catalog.product fields (camelCase; the 1C GUID is the xmlId)."""
    return {
        "name": product["name"],
        "xmlId": product["id"],
        "code": product.get("code") or "",
        "active": "N" if product.get("deleted") else "Y",
        "previewText": product.get("full_name") or "",
    }


class ProductEgress:
    """Delivers product changes from ``egress.bitrix24.product`` to a Bitrix24 portal."""

    def __init__(self, engine: AsyncEngine, client: Bitrix24Client, producer: AckedProducer,
                 policy: RetryPolicy, dlq_topic: str) -> None:
        self.engine = engine
        self.client = client
        self.producer = producer
        self.policy = policy
        self.dlq_topic = dlq_topic

    async def deliver(self, record: SourceRecord) -> str:
        """Deliver one change; returns the outcome (delivered, skipped, dead_lettered)."""
        headers = record.header_map
        with logctx.bind(event_id=headers.get("ce_id", ""), request_id=headers.get(REQUEST_ID, "")):
            outcome = await self._deliver(record, headers)
        EGRESS_DELIVERIES.labels(TARGET, "product", outcome).inc()
        return outcome

    async def _deliver(self, record: SourceRecord, headers: dict[str, str]) -> str:
        first = datetime.now(UTC)
        try:
            product = json.loads(record.value or b"")
            outbox_id = int(headers[OUTBOX_ID])
            pid = str(product["id"])
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter(record, InvalidRecord(f"not an egress product record: {exc}"), 1, first)
            return "dead_lettered"
        last = await retry_transient(lambda: self._scalar(_LAST, {"target": TARGET, "id": pid}),
                                     what="egress delivery lookup", entity="product")
        if last is not None and last >= outbox_id:
            return "skipped"  # a replay of something already delivered
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                external_id = await self._upsert(pid, product)
                break
            except Exception as exc:  # noqa: BLE001 — the policy decides via classify()
                err = classify(exc)
                if not self.policy.should_retry(exc, attempt, time.monotonic() - started):
                    await self._dead_letter(record, exc, attempt, first)
                    return "dead_lettered"
                delay = self.policy.delay(attempt, retry_after=err.retry_after)
                EGRESS_DELIVERIES.labels(TARGET, "product", "retried").inc()
                log.warning("bitrix24 call failed, retrying", extra={
                    "error_code": err.code, "error": str(exc)[:300], "attempt": attempt,
                    "retry_in_s": round(delay, 2), "product_id": pid})
                await asyncio.sleep(delay)
        params = {"target": TARGET, "id": pid, "outbox_id": outbox_id,
                  "event_id": headers.get("ce_id") or product.get("event_id"), "ext": external_id}
        await retry_transient(lambda: self._execute(_DELIVERED, params),
                              what="egress delivery record", entity="product")
        log.info("delivered to bitrix24", extra={"product_id": pid, "bitrix24_id": external_id,
                                                 "attempts": attempt})
        return "delivered"

    async def _upsert(self, pid: str, product: dict) -> str:
        fields = product_fields(product)
        known = await retry_transient(lambda: self._scalar(_CROSSWALK, {"target": TARGET, "id": pid}),
                                      what="crosswalk lookup", entity="product")
        if known is not None:
            await self.client.update_product(int(known), fields)
            return str(known)
        # No crosswalk entry: an earlier attempt may still have created it (timeout after
        # the portal executed the call), so look it up by external key before creating.
        found = await self.client.find_product_by_xml_id(pid)
        if found is None:
            found = await self.client.add_product(fields)
        else:
            await self.client.update_product(found, fields)
        await retry_transient(lambda: self._execute(_LINK, {"target": TARGET, "id": pid, "ext": str(found)}),
                              what="crosswalk link", entity="product")
        return str(found)

    async def _scalar(self, stmt, params):
        async with self.engine.connect() as conn:
            return await conn.scalar(stmt, params)

    async def _execute(self, stmt, params) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(stmt, params)

    async def _dead_letter(self, record: SourceRecord, exc: BaseException, attempts: int,
                           first: datetime) -> None:
        out = dead_letter(record, Failure(exc, attempts, first, datetime.now(UTC)),
                          stage="egress", topic=self.dlq_topic)
        await retry_transient(lambda: self.producer.send(out), what="dlq publish", entity="product")
        DLQ_RECORDS.labels("egress", classify(exc).code).inc()
        log.error("egress record dead-lettered", extra={
            "target": TARGET, "error": str(exc)[:500], "attempts": attempts,
            "source_partition": record.partition, "source_offset": record.offset})
