"""Publishing the records of a CommerceML file: in batches, acknowledged (acks=all)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from connectors.commerceml.raw_records import Record
from connectors.ingress.publish import Accepted, publish
from mmstream.envelope import CloudEvent, change_id, now_iso
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import INGRESS_RECORDS


@dataclass(frozen=True)
class Target:
    """Where and as whom records are published."""

    producer: AckedProducer
    topics: dict[str, str]
    principal: str
    request_id: str
    batch_size: int
    retry_after_s: int
    #: Looks at each batch before it is published and may replace records (the exchange
    #: turns 1С's answers to exported documents into records of their own topic).
    route: Callable[[list[Record]], Awaitable[list[Record]]] | None = None


def accepted(record: Record, principal: str, request_id: str) -> Accepted:
    """The record with its CloudEvents attributes. ``ce_id`` depends only on entity, key and
    content hash, so publishing the same file again repeats the same ids (downstream dedupe)."""
    event = CloudEvent(
        id=change_id(record.entity, record.key, record.version),
        source=f"/commerceml/{principal}",
        type=f"ru.mastermobile.commerceml.{record.entity}.v1",
        subject=record.key,
        time=now_iso(),
        request_id=request_id,
    )
    return Accepted(key=record.key, value=record.value(), event=event)


def _take(records: Iterator[Record], n: int) -> list[Record]:
    return list(itertools.islice(records, n))


async def publish_all(records: Iterator[Record], target: Target) -> Counter:
    """Publish every record, ``batch_size`` at a time; the iterator (parsing: CPU work) is
    advanced in a worker thread so the event loop keeps serving other requests. Raises
    ApiError 503 (publish.py) if the broker does not acknowledge; returns counts by entity."""
    counts: Counter = Counter()
    while batch := await asyncio.to_thread(_take, records, target.batch_size):
        if target.route is not None:
            batch = await target.route(batch)
        by_topic: dict[str, list[Record]] = defaultdict(list)
        for record in batch:
            by_topic[record.topic].append(record)
        for topic, recs in by_topic.items():
            await publish(
                target.producer,
                target.topics[topic],
                [accepted(r, target.principal, target.request_id) for r in recs],
                target.retry_after_s,
            )
            INGRESS_RECORDS.labels("commerceml", recs[0].entity, "accepted").inc(len(recs))
            counts[recs[0].entity] += len(recs)
    return counts
