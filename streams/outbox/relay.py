"""Outbox relay: publishes committed outbox entries to the norm and egress topics.

Entries are published per source partition, to the same partition number downstream, by
the worker that owns that source partition (co-partitioning keeps one writer per
partition). A PostgreSQL advisory lock per partition keeps a worker that is losing the
partition in a rebalance from publishing concurrently with its new owner. Publishing is
at least once with stable event ids (``ce_id``); consumers dedupe by it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.avro_serde import AvroEncoder
from mmstream.envelope import REQUEST_ID, CloudEvent
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.metrics import OUTBOX_PUBLISHED

OUTBOX_ID = "mm.outbox_id"
VERSION = "mm.version"

_PENDING = text(
    "SELECT id, event_id, entity, entity_id, change, version, payload, headers, created_at "
    "FROM outbox WHERE source_topic = :topic AND source_partition = :partition "
    "AND published_at IS NULL ORDER BY id LIMIT :limit"
)
_MARK = text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)")


@dataclass(frozen=True)
class Route:
    """Where an entity's changes go: its normalized topic (Avro) and egress topics (JSON)."""

    norm_topic: str
    encoder: AvroEncoder
    egress_topics: tuple[str, ...]


class OutboxRelay:
    """Publishes pending outbox rows of one source partition at a time."""

    def __init__(self, engine: AsyncEngine, producer: AckedProducer, routes: dict[str, Route],
                 *, page: int = 2000) -> None:
        self.engine = engine
        self.producer = producer
        self.routes = routes
        self.page = page
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def flush(self, source_topic: str, partition: int, *, wait: bool = True) -> int:
        """Publish every pending entry of the partition; returns how many were published.

        With ``wait=False`` (the periodic sweep) a partition busy elsewhere is skipped.
        """
        lock = self._locks.setdefault((source_topic, partition), asyncio.Lock())
        if not wait and lock.locked():
            return 0
        published = 0
        async with lock:
            while True:
                async with self.engine.begin() as conn:
                    if wait:
                        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t), :p)"),
                                           {"t": source_topic, "p": partition})
                    elif not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:t), :p)"),
                                               {"t": source_topic, "p": partition}):
                        return published
                    rows = (await conn.execute(_PENDING, {"topic": source_topic, "partition": partition,
                                                          "limit": self.page})).all()
                    if not rows:
                        return published
                    records = [rec for row in rows for rec in self._records(row, partition)]
                    await self.producer.send_many(records)
                    await conn.execute(_MARK, {"ids": [row.id for row in rows]})
                for row in rows:
                    OUTBOX_PUBLISHED.labels(row.entity).inc()
                published += len(rows)
                if len(rows) < self.page:
                    return published

    def _records(self, row, partition: int) -> list[OutRecord]:
        route = self.routes[row.entity]
        created: datetime = row.created_at
        origin = row.headers or {}
        event = CloudEvent(
            id=str(row.event_id),
            source="/mastermobile-stream/sink",
            type=f"ru.mastermobile.{row.entity}.{row.change}.v1",
            subject=row.entity_id,
            time=created.isoformat(),
            request_id=origin.get(REQUEST_ID, ""),
        )
        extra = [(OUTBOX_ID, str(row.id).encode()), (VERSION, row.version.encode())]
        key = row.entity_id.encode()
        norm_value = route.encoder.encode({**row.payload, "event_id": str(row.event_id), "changed_at": created})
        out = [OutRecord(route.norm_topic, norm_value, key,
                         [*_with_type(event.headers(), "application/avro"), *extra], partition)]
        egress_value = json.dumps({**row.payload, "event_id": str(row.event_id)}, ensure_ascii=False).encode()
        out += [OutRecord(t, egress_value, key, [*event.headers(), *extra], partition)
                for t in route.egress_topics]
        return out


def _with_type(headers: list[tuple[str, bytes]], content_type: str) -> list[tuple[str, bytes]]:
    return [(k, content_type.encode() if k == "content-type" else v) for k, v in headers]
