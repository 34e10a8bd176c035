"""The product sink: normalize a batch, merge it into PostgreSQL, dead-letter what cannot
be stored, publish the outbox, and only then let the caller acknowledge the batch."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.envelope import REQUEST_ID
from mmstream.errors import InvalidRecord, classify, dead_letterable
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import DLQ_RECORDS, SINK_BATCH_LATENCY, SINK_BATCH_SIZE, SINK_RECORDS
from streams.backoff import retry_transient
from streams.dlq.records import Failure, dead_letter
from streams.normalize.onec_product import parse
from streams.outbox.relay import OutboxRelay
from streams.records import SourceRecord
from streams.sink.isolate import store_isolating
from streams.sink.product_store import IncomingProduct, MergeResult, merge

log = logging.getLogger(__name__)
_KEEP_HEADERS = (REQUEST_ID, "ce_id", "ce_source")


class ProductSink:
    """Handles one batch of raw product records; idempotent, so replays are harmless."""

    def __init__(self, engine: AsyncEngine, producer: AckedProducer, relay: OutboxRelay,
                 dlq_topic: str) -> None:
        self.engine = engine
        self.producer = producer
        self.relay = relay
        self.dlq_topic = dlq_topic

    async def handle(self, records: list[SourceRecord]) -> MergeResult:
        """Process the batch completely. Returns only when every effect is durable."""
        started = time.perf_counter()
        good: list[tuple[SourceRecord, IncomingProduct]] = []
        dead: list[tuple[SourceRecord, BaseException]] = []
        for rec in records:
            try:
                if rec.value is None:
                    raise InvalidRecord("empty record value")
                headers = rec.header_map
                good.append((rec, IncomingProduct(parse(rec.value), rec.topic, rec.partition, rec.offset,
                                                  {k: headers[k] for k in _KEEP_HEADERS if k in headers})))
            except Exception as exc:  # noqa: BLE001 — parsing is pure: any error is the record's
                if not dead_letterable(exc):
                    raise
                dead.append((rec, exc))
        result = await self._merge(good, dead)
        if dead:
            await self._dead_letter(dead)
        for topic, partition in sorted({(r.topic, r.partition) for r in records}):
            await retry_transient(lambda t=topic, p=partition: self.relay.flush(t, p),
                                  what="outbox publish", entity="product")
        log.info("batch stored", extra={
            "records": len(records), "new_versions": result.new_versions,
            "duplicates": result.duplicates, "stale": result.stale, "invalid": len(dead),
            "offsets": {f"{r.topic}/{r.partition}": r.offset for r in records}})
        SINK_BATCH_SIZE.labels("product").observe(len(records))
        SINK_BATCH_LATENCY.labels("product").observe(time.perf_counter() - started)
        SINK_RECORDS.labels("product", "upserted").inc(result.new_versions)
        SINK_RECORDS.labels("product", "duplicate").inc(result.duplicates)
        SINK_RECORDS.labels("product", "stale").inc(result.stale)
        SINK_RECORDS.labels("product", "invalid").inc(len(dead))
        return result

    async def _merge(self, good, dead) -> MergeResult:
        async def store(part) -> MergeResult:
            async with self.engine.begin() as conn:
                return await merge(conn, [inc for _, inc in part])

        results, bad = await store_isolating(good, store, what="product merge", entity="product")
        dead += [(rec, _Merge(exc)) for (rec, _), exc in bad]
        return MergeResult(*(sum(getattr(r, f) for r in results)
                             for f in ("total", "new_versions", "upserted", "duplicates")))

    async def _dead_letter(self, dead: list[tuple[SourceRecord, BaseException]]) -> None:
        now = datetime.now(UTC)
        # What the database refused is named as the merge stage's; the rest (parsing) as "sink".
        staged = [(rec, exc.error, "merge") if isinstance(exc, _Merge) else (rec, exc, "sink")
                  for rec, exc in dead]
        out = [dead_letter(rec, Failure(exc, 1, now, now), stage=stage, topic=self.dlq_topic)
               for rec, exc, stage in staged]
        await retry_transient(lambda: self.producer.send_many(out), what="dlq publish", entity="product")
        for rec, exc, stage in staged:
            DLQ_RECORDS.labels(stage, classify(exc).code).inc()
            log.warning("record dead-lettered", extra={
                "stage": stage, "error": str(exc)[:500], "source_topic": rec.topic,
                "source_partition": rec.partition, "source_offset": rec.offset})


class _Merge(Exception):  # noqa: N818 — a marker, never raised
    """Wraps an error of the merge stage in the dead list (which stage it failed at)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
