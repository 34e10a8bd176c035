"""The entity sink: normalize a batch of raw records of any entity, merge the canonical
versions into PostgreSQL, dead-letter what cannot be normalized or stored, publish the
changes the merge wrote (after its commit, marked published after the broker's ack; the
outbox row is the crash-safety record the sweep publishes from), and only then let the
caller acknowledge the batch."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.dlq.format import Failure, dead_letter
from mmstream.envelope import REQUEST_ID, TRACEPARENT
from mmstream.errors import classify, dead_letterable
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import DLQ_RECORDS, SINK_BATCH_LATENCY, SINK_BATCH_SIZE, SINK_RECORDS
from mmstream.models.base import Canonical
from mmstream.retry import retry_forever
from stages import crosswalk
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, Normalizer
from stages.outbox.relay import OutboxRelay, OutboxRow
from stages.runner import InOrder
from stages.sink.entity_store import Incoming, MergeCounts, merge
from stages.sink.isolate import store_isolating
from stages.source_record import SourceRecord

log = logging.getLogger(__name__)
_KEEP_HEADERS = (REQUEST_ID, TRACEPARENT, "ce_id", "ce_source")
STAGE = "normalize"
#: A record whose canonical versions the database refused (dlq.normalize, this stage).
MERGE_STAGE = "merge"


def decode(record: SourceRecord) -> dict[str, Any]:
    """The raw record's JSON object. A null value (a deletion on Bitrix24 raw topics) becomes
    ``{"_deleted": true, "_key": <key>}`` so the normalizer can name what was deleted."""
    if record.value is None:
        return {"_deleted": True, "_key": (record.key or b"").decode("utf-8", "replace")}
    try:
        value = json.loads(record.value)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, bad UTF-8 and integers too long to convert.
        raise Unnormalizable(f"not JSON: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(value, dict):
        raise Unnormalizable(f"expected a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class _Stored:
    """What a batch's store phase hands to its publish phase (EntitySink.handle)."""

    counts: MergeCounts
    by_entity: dict[str, MergeCounts]
    changes: list[OutboxRow]  # the outbox entries the merge committed, in outbox order
    invalid: int  # records dead-lettered
    started: float  # perf_counter() at the batch's start, after normalizing, after merging
    normalized: float
    merged: float


class EntitySink:
    """Handles one batch of raw records of any registered topic; idempotent under replay."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AckedProducer,
        relay: OutboxRelay,
        dlq_topic: str,
        normalizers: Mapping[str, Normalizer],
        ctx: Context,
    ) -> None:
        """``normalizers`` maps the *physical* raw topic name to its normalizer."""
        self.engine = engine
        self.producer = producer
        self.relay = relay
        self.dlq_topic = dlq_topic
        self.normalizers = normalizers
        self.ctx = ctx
        self._store_order = InOrder()
        self._publish_order = InOrder()

    def normalize(self, rec: SourceRecord) -> list[Incoming]:
        """The canonical versions of one raw record (raises InvalidRecord when it has none)."""
        headers = rec.header_map
        entities = self.normalizers[rec.topic](decode(rec), headers, self.ctx)
        kept = {k: headers[k] for k in _KEEP_HEADERS if k in headers}
        return [Incoming(e, rec.topic, rec.partition, rec.offset, kept) for e in entities]

    async def handle(self, records: list[SourceRecord]) -> MergeCounts:
        """Process the batch completely. Returns only when every effect is durable.

        Batches handled side by side (the stage runner's ``in_flight``) overlap only where
        order cannot suffer: a batch is stored (normalize, merge, commit, dead-letter) after
        the batch taken before it was stored, and published after that batch was published;
        so batch N+1's merge runs while batch N's changes go to the broker."""
        store_turn, publish_turn = self._store_order.take(), self._publish_order.take()
        try:
            async with store_turn:
                stored = await self._store_batch(records)
        except BaseException:
            publish_turn.abandon()
            raise
        async with publish_turn:
            return await self._publish_batch(records, stored)

    async def _store_batch(self, records: list[SourceRecord]) -> _Stored:
        started = time.perf_counter()
        good: list[tuple[SourceRecord, list[Incoming]]] = []
        dead: list[tuple[SourceRecord, BaseException, str]] = []
        for rec in records:
            try:
                good.append((rec, self.normalize(rec)))
            except Exception as exc:  # noqa: BLE001 — normalizers are pure: any error is the record's
                if not dead_letterable(exc):
                    raise
                dead.append((rec, exc, STAGE))
        normalized = time.perf_counter()
        counts, by_entity, changes = await self._merge(good, dead)
        if dead:
            await self._dead_letter(dead)
        return _Stored(
            counts, by_entity, changes, len(dead), started, normalized, time.perf_counter()
        )

    async def _publish_batch(self, records: list[SourceRecord], stored: _Stored) -> MergeCounts:
        counts, by_entity, changes = stored.counts, stored.by_entity, stored.changes
        # Committed: publish what the merge wrote, marked published once acknowledged. A crash
        # before the mark leaves the entries pending for the sweep (at least once, same ce_id).
        await retry_forever(
            lambda: self.relay.publish_committed(changes),
            stage="sink",
            what="outbox publish",
            entity="entity",
        )
        published = time.perf_counter()
        for entity, c in by_entity.items():
            SINK_BATCH_SIZE.labels(entity).observe(c.total)
            SINK_RECORDS.labels(entity, "upserted").inc(c.changed)
            for reason, n in c.skips().items():
                SINK_RECORDS.labels(entity, reason).inc(n)
        SINK_BATCH_LATENCY.labels("entities").observe(time.perf_counter() - stored.started)
        log.info(
            "batch stored",
            extra={
                "records": len(records),
                "changed": counts.changed,
                "duplicates": counts.duplicate,
                "stale": counts.stale,
                "not_owner": counts.not_owner,
                "unchanged": counts.unchanged,
                "invalid": stored.invalid,
                "normalize_s": round(stored.normalized - stored.started, 3),
                "merge_s": round(stored.merged - stored.normalized, 3),
                "publish_s": round(published - stored.merged, 3),
                "offsets": {f"{r.topic}/{r.partition}": r.offset for r in records},
            },
        )
        return counts

    async def _store(self, items: list[Incoming]) -> tuple[dict[str, MergeCounts], list[OutboxRow]]:
        by_model: dict[type[Canonical], list[Incoming]] = defaultdict(list)
        changes: list[OutboxRow] = []
        async with self.engine.begin() as conn:
            resolved = await crosswalk.resolve(conn, [i.entity for i in items])
            for inc, ent in zip(items, resolved, strict=True):
                by_model[type(ent)].append(
                    Incoming(
                        ent, inc.source_topic, inc.source_partition, inc.source_offset, inc.headers
                    )
                )
            counts = {
                model.ENTITY: await merge(conn, model, batch, changes)
                for model, batch in by_model.items()
            }
        return counts, changes  # committed

    async def _merge(
        self, good, dead
    ) -> tuple[MergeCounts, dict[str, MergeCounts], list[OutboxRow]]:
        totals = MergeCounts()
        by_entity: dict[str, MergeCounts] = defaultdict(MergeCounts)

        def add(result: dict[str, MergeCounts]) -> None:
            for entity, c in result.items():
                totals.add(c)
                by_entity[entity].add(c)

        # The unit of isolation is the raw record: all its canonical versions go or none.
        results, bad = await store_isolating(
            good,
            lambda part: self._store([inc for _, incs in part for inc in incs]),
            what="entity merge",
            entity="entity",
        )
        changes: list[OutboxRow] = []
        for result, written in results:
            add(result)
            changes += written
        dead += [(rec, exc, MERGE_STAGE) for (rec, _), exc in bad]
        return totals, by_entity, changes

    async def _dead_letter(self, dead: list[tuple[SourceRecord, BaseException, str]]) -> None:
        now = datetime.now(UTC)
        out = [
            dead_letter(rec, Failure(exc, 1, now, now), stage=stage, topic=self.dlq_topic)
            for rec, exc, stage in dead
        ]
        await retry_forever(
            lambda: self.producer.send_many(out), stage="sink", what="dlq publish", entity="entity"
        )
        for rec, exc, stage in dead:
            DLQ_RECORDS.labels(stage, classify(exc).code).inc()
            log.warning(
                "record dead-lettered",
                extra={
                    "stage": stage,
                    "error": str(exc)[:500],
                    "source_topic": rec.topic,
                    "source_partition": rec.partition,
                    "source_offset": rec.offset,
                },
            )
