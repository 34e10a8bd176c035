"""Outbox relay: publishes committed outbox entries to the norm and egress topics.

Two ways in. The sink hands over the entries its merge just committed
(:meth:`OutboxRelay.publish_committed`: one pass from merge to publish, nothing read back)
and they are marked published once the broker acknowledged them. The outbox table stays
the crash-safety record: what a crash left unmarked between a commit and its broker
acknowledgement is published by the sweep (:meth:`OutboxRelay.flush`/``flush_many``), which
reads pending rows page by page.

Entries are published per source partition by the worker that owns that source partition
(co-partitioning keeps one writer per partition), every entity by its canonical id (murmur2,
the partitioner the bridge uses too, so a 1С entity keyed by its Ref_Key lands on the
partition number it came from, and an entity whose raw key was a Bitrix24 id lands where its
canonical id belongs).
A deletion on a compacted normalized topic is followed by a tombstone. A PostgreSQL advisory lock per partition keeps a worker that is losing the
partition in a rebalance from publishing concurrently with its new owner. Publishing is
at least once with stable event ids (``ce_id``); consumers dedupe by it.

A row whose records cannot be built (a value the Avro schema cannot carry, a payload the
model refuses) must not hold up its partition, whose rows go out in outbox order: it is
sent to the relay DLQ with the reason and marked (``published_at`` set, the reason under
``mm.dead_letter`` in its ``headers``), and the rest of the page is published
(design.md invariant 9). Errors of the database or broker are raised: the caller waits
them out, nothing is dead-lettered for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from pydantic import model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.avro_gen import avro_record
from mmstream.avro_serde import AvroEncoder
from mmstream.dlq.format import Failure, dead_letter
from mmstream.envelope import REQUEST_ID, TRACEPARENT, CloudEvent
from mmstream.errors import classify, dead_letterable
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.metrics import DLQ_RECORDS, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from mmstream.models.base import Canonical
from stages.source_record import SourceRecord

log = logging.getLogger(__name__)
OUTBOX_ID = "mm.outbox_id"
VERSION = "mm.version"
#: Key in ``outbox.headers`` of a row that went to the relay DLQ instead of its topics.
DEAD_LETTER = "mm.dead_letter"
STAGE = "relay"
#: Largest payload a relay DLQ record carries (the broker's default limit is 1 MB).
_DLQ_VALUE_MAX = 512 * 1024

_PENDING = text(
    "SELECT id, event_id, entity, entity_id, change, version, payload::text AS payload_text, "
    "headers, created_at, source_topic, source_partition, source_offset "
    "FROM outbox WHERE source_topic = :topic AND source_partition = :partition "
    "AND published_at IS NULL ORDER BY id LIMIT :limit"
)
_PENDING_MANY = text(
    "SELECT o.id, event_id, entity, entity_id, change, version, "
    "payload::text AS payload_text, headers, created_at, o.source_topic, o.source_partition, "
    "o.source_offset "
    "FROM outbox o JOIN unnest(CAST(:topics AS text[]), CAST(:parts AS integer[])) AS w(t, p) "
    "ON o.source_topic = w.t AND o.source_partition = w.p "
    "WHERE published_at IS NULL ORDER BY o.id LIMIT :limit"
)
# The pending entries of several source partitions up to a batch's last one (ids only, from
# the partial index outbox_pending): are the entries a batch just committed all that is
# pending there before it? (A later batch's entries, committed while this one publishes,
# come after it and wait for it: stages/sink/entity_sink.py.)
_PENDING_IDS = text(
    "SELECT o.id FROM outbox o JOIN unnest(CAST(:topics AS text[]), CAST(:parts AS integer[])) "
    "AS w(t, p) ON o.source_topic = w.t AND o.source_partition = w.p "
    "WHERE published_at IS NULL AND o.id <= :upto ORDER BY o.id LIMIT :limit"
)
_LOCK_MANY = text(
    "SELECT count(pg_advisory_xact_lock(hashtext(w.t), w.p)) FROM (SELECT t, p FROM "
    "unnest(CAST(:topics AS text[]), CAST(:parts AS integer[])) AS u(t, p) ORDER BY t, p "
    "OFFSET 0) AS w"
)
_MARK = text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)")
_MARK_DEAD = text(
    "UPDATE outbox SET published_at = now(), "
    "headers = headers || jsonb_build_object(CAST(:key AS text), CAST(:reason AS text)) WHERE id = :id"
)
# Which of the owned source partitions have entries left pending for a while (the sweep's
# input: what a crash left between a commit and its publication). Younger entries are the
# live path's, being published right now; read from the partial index outbox_pending.
_STALE_PARTITIONS = text(
    "SELECT DISTINCT source_topic, source_partition FROM outbox WHERE published_at IS NULL "
    "AND created_at < now() - make_interval(secs => :age) AND (source_topic, source_partition) "
    "IN (SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS integer[])))"
)
# Served by the partial index outbox_pending; bounded by a statement timeout so a slow
# database cannot stall the sweep that calls it.
_BACKLOG = text(
    "SELECT entity, count(*) AS n, EXTRACT(EPOCH FROM now() - min(created_at)) AS age "
    "FROM outbox WHERE published_at IS NULL AND (source_topic, source_partition) IN "
    "(SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS integer[]))) GROUP BY entity"
)


@dataclass(frozen=True)
class OutboxRow:
    """An outbox entry as the relay publishes it: the columns of a pending row, or what the
    merge's ``RETURNING`` gave back for the entries it wrote (``entity_store.merge``)."""

    id: int
    event_id: UUID
    entity: str
    entity_id: str
    change: str
    version: str
    payload_text: str  # the merged row, JSON as PostgreSQL wrote it (exact numbers)
    headers: dict | None
    created_at: datetime
    source_topic: str
    source_partition: int
    source_offset: int


@dataclass(frozen=True)
class Route:
    """Where an entity's changes go: its normalized topic (Avro) and egress topics (JSON)."""

    norm_topic: str
    encoder: AvroEncoder
    egress_topics: tuple[str, ...]
    # The payload is the merged row, re-read through the model so the Avro record has exact
    # decimals and real instants; published by key.
    model: type[Canonical]
    # The normalized topic is compacted: a deletion is followed by a tombstone.
    tombstones: bool = False


class OutboxRelay:
    """Publishes pending outbox rows of one source partition at a time."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AckedProducer,
        routes: dict[str, Route],
        *,
        dlq_topic: str,
        page: int = 2000,
    ) -> None:
        self.engine = engine
        self.producer = producer
        self.routes = routes
        self.dlq_topic = dlq_topic
        self.page = page
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._measured: set[str] = set()

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
                        await conn.execute(
                            text("SELECT pg_advisory_xact_lock(hashtext(:t), :p)"),
                            {"t": source_topic, "p": partition},
                        )
                    elif not await conn.scalar(
                        text("SELECT pg_try_advisory_xact_lock(hashtext(:t), :p)"),
                        {"t": source_topic, "p": partition},
                    ):
                        return published
                    rows = (
                        await conn.execute(
                            _PENDING,
                            {"topic": source_topic, "partition": partition, "limit": self.page},
                        )
                    ).all()
                    if not rows:
                        return published
                    await self._publish(conn, rows)
                for row in rows:
                    OUTBOX_PUBLISHED.labels(row.entity).inc()
                published += len(rows)
                if len(rows) < self.page:
                    return published

    async def flush_many(self, partitions: list[tuple[str, int]]) -> int:
        """Publish every pending entry of several source partitions in one transaction per
        page (a batch of mixed entities touches many partitions; one round trip each would
        cost more than the merge). Same guarantees as :meth:`flush`: each partition's lock is
        held, its entries go out in outbox order."""
        pairs = sorted(set(partitions))
        if len(pairs) == 1:
            return await self.flush(*pairs[0])
        published = 0
        async with contextlib.AsyncExitStack() as stack:
            for pair in pairs:  # sorted: two callers never wait on each other in a cycle
                await stack.enter_async_context(self._locks.setdefault(pair, asyncio.Lock()))
            topics = [t for t, _ in pairs]
            parts = [p for _, p in pairs]
            while True:
                async with self.engine.begin() as conn:
                    await self._advisory_locks(conn, pairs)
                    rows = (
                        await conn.execute(
                            _PENDING_MANY, {"topics": topics, "parts": parts, "limit": self.page}
                        )
                    ).all()
                    if not rows:
                        return published
                    await self._publish(conn, rows)
                for row in rows:
                    OUTBOX_PUBLISHED.labels(row.entity).inc()
                published += len(rows)
                if len(rows) < self.page:
                    return published

    async def publish_committed(self, changes: list[OutboxRow]) -> int:
        """Publish the outbox entries a merge just committed (``entity_store.merge``'s
        ``changes``) without reading them back, then mark them published: the sink's one
        pass from merge to publish. Same guarantees as :meth:`flush_many`: each partition's
        lock is held while publishing and marking, and entries go out in outbox order. When
        anything else is pending on those partitions before the last of ours (a crash between
        a commit and its publication, or a sweep that took ours first), the pending entries
        are published from the table instead, in outbox order, so nothing overtakes an older
        change. Entries after ours (the next batch's, committed meanwhile) are its caller's
        to publish, after ours."""
        if not changes:
            return 0
        changes = sorted(changes, key=lambda c: c.id)
        pairs = sorted({(c.source_topic, c.source_partition) for c in changes})
        # Encoding is the CPU part: done before the locks, once for the whole batch.
        built, dead = self._build(changes, trusted=True)
        async with contextlib.AsyncExitStack() as stack:
            for pair in pairs:  # sorted: two callers never wait on each other in a cycle
                await stack.enter_async_context(self._locks.setdefault(pair, asyncio.Lock()))
            async with self.engine.begin() as conn:
                await self._advisory_locks(conn, pairs)
                pending = (
                    (
                        await conn.execute(
                            _PENDING_IDS,
                            {
                                "topics": [t for t, _ in pairs],
                                "parts": [p for _, p in pairs],
                                "upto": changes[-1].id,
                                "limit": len(changes) + 1,
                            },
                        )
                    )
                    .scalars()
                    .all()
                )
                if pending == [c.id for c in changes]:
                    await self._send(conn, changes, built, dead)
                    for row in changes:
                        OUTBOX_PUBLISHED.labels(row.entity).inc()
                    return len(changes)
        log.info(
            "other outbox entries pending on the batch's partitions: publishing from the table",
            extra={"partitions": len(pairs), "changes": len(changes)},
        )
        return await self.flush_many(pairs)

    @staticmethod
    async def _advisory_locks(conn, pairs: list[tuple[str, int]]) -> None:
        """Every partition's lock in one round trip, always in the same (sorted) order so two
        sessions never wait on each other in a cycle (OFFSET 0 keeps the sort before the
        calls)."""
        await conn.execute(
            _LOCK_MANY, {"topics": [t for t, _ in pairs], "parts": [p for _, p in pairs]}
        )

    async def sweep(self, owned: list[tuple[str, int]], *, min_age_s: float) -> int:
        """Publish what was left pending for at least ``min_age_s`` on the ``owned`` source
        partitions (one query finds them; a partition busy elsewhere is skipped). Entries a
        live batch is publishing are younger: the sweep does not race it for them."""
        if not owned:
            return 0
        async with self.engine.begin() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 5000"))
            stale = (
                await conn.execute(
                    _STALE_PARTITIONS,
                    {
                        "age": min_age_s,
                        "topics": [t for t, _ in owned],
                        "partitions": [p for _, p in owned],
                    },
                )
            ).all()
        published = 0
        for t, p in sorted(stale):
            published += await self.flush(t, p, wait=False)
        return published

    async def measure_backlog(self, owned: list[tuple[str, int]]) -> dict[str, int]:
        """Set mm_outbox_backlog / mm_outbox_oldest_age_seconds from the entries of the given
        (owned) source partitions; entities with nothing pending drop to 0. Returns entity ->
        backlog."""
        async with self.engine.begin() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 5000"))
            rows = (
                await conn.execute(
                    _BACKLOG, {"topics": [t for t, _ in owned], "partitions": [p for _, p in owned]}
                )
            ).all()
        pending = {row.entity: (int(row.n), float(row.age or 0)) for row in rows}
        for entity in {*self._measured, *pending}:
            n, age = pending.get(entity, (0, 0.0))
            OUTBOX_BACKLOG.labels(entity).set(n)
            OUTBOX_OLDEST_AGE.labels(entity).set(max(0.0, age))
        self._measured |= set(pending)
        return {entity: n for entity, (n, _) in pending.items()}

    async def _publish(self, conn, rows) -> None:
        """Send a page's records (and the DLQ records of rows that cannot be built or that
        the broker refuses), then mark every row of the page in the caller's transaction."""
        built, dead = self._build(rows)
        await self._send(conn, rows, built, dead)

    def _build(
        self, rows, *, trusted: bool = False
    ) -> tuple[list[tuple[OutboxRow, list[OutRecord]]], list[tuple[OutboxRow, BaseException]]]:
        """The records of every row, Avro-encoded in batches (one ``encode_many`` per entity);
        the rows that cannot be built (a value the schema cannot carry), each with its error.

        ``trusted``: the rows are what this process's merge just wrote from entities that
        passed the model's bounds at normalization, so re-reading them skips that check
        (the type conversions still run; the encoder still refuses what it cannot write)."""
        # Rows: OutboxRow, or rows of the pending SELECT (the same columns, by name).
        dead: list[tuple[OutboxRow, BaseException]] = []
        drafts: list[tuple[OutboxRow, dict]] = []
        for row in rows:
            try:
                drafts.append((row, self._norm_record(row, trusted)))
            except Exception as exc:  # noqa: BLE001 — dead_letterable decides
                if not dead_letterable(exc):
                    raise
                dead.append((row, exc))
        by_entity: dict[str, list[tuple[OutboxRow, dict]]] = {}
        for row, record in drafts:
            by_entity.setdefault(row.entity, []).append((row, record))
        encoded: dict[int, bytes] = {}
        for entity, items in by_entity.items():
            encoder = self.routes[entity].encoder
            values: list[bytes | None]
            try:
                values = list(encoder.encode_many([record for _, record in items]))
            except Exception as exc:  # noqa: BLE001 — dead_letterable decides
                if not dead_letterable(exc):
                    raise
                # One record the schema cannot carry: one by one finds it (rare).
                values = []
                for row, record in items:
                    try:
                        values.append(encoder.encode(record))
                    except Exception as one:  # noqa: BLE001 — dead_letterable decides
                        if not dead_letterable(one):
                            raise
                        dead.append((row, one))
                        values.append(None)
            for (row, _), value in zip(items, values, strict=True):
                if value is not None:
                    encoded[id(row)] = value
        built = [
            (row, self._records(row, encoded[id(row)])) for row, _ in drafts if id(row) in encoded
        ]
        return built, dead

    async def _send(self, conn, rows, built, dead) -> None:
        """Produce ``built`` (row by row when the broker refuses a record), dead-letter
        ``dead``, then mark ``rows`` published in the caller's transaction."""
        dead = list(dead)
        try:
            await self.producer.send_many([r for _, records in built for r in records])
        except Exception as exc:  # noqa: BLE001 — dead_letterable decides
            if not dead_letterable(exc):
                raise
            # Rare: the broker refused a record itself (too large). Row by row, in outbox
            # order, finds it; rows sent twice carry the same ce_id (consumers dedupe).
            for row, records in built:
                try:
                    await self.producer.send_many(records)
                except Exception as one:  # noqa: BLE001 — dead_letterable decides
                    if not dead_letterable(one):
                        raise
                    dead.append((row, one))
        now = datetime.now(UTC)
        await self.producer.send_many(
            [
                dead_letter(
                    _as_source(row), Failure(err, 1, now, now), stage=STAGE, topic=self.dlq_topic
                )
                for row, err in dead
            ]
        )
        await conn.execute(_MARK, {"ids": [row.id for row in rows]})
        for row, err in dead:
            code = classify(err).code
            await conn.execute(
                _MARK_DEAD,
                {"key": DEAD_LETTER, "reason": f"{code}: {str(err)[:500]}", "id": row.id},
            )
            DLQ_RECORDS.labels(STAGE, code).inc()
            log.warning(
                "outbox row dead-lettered",
                extra={
                    "stage": STAGE,
                    "error": str(err)[:500],
                    "entity": row.entity,
                    "entity_id": row.entity_id,
                    "outbox_id": row.id,
                },
            )

    def _norm_record(self, row, trusted: bool) -> dict:
        """The Avro record (a dict) of the row's norm topic value."""
        route = self.routes[row.entity]
        payload = json.loads(row.payload_text, parse_float=Decimal)
        model = _trusted(route.model) if trusted else route.model
        entity = model.model_validate(payload)
        return {
            **avro_record(entity),
            "event_id": str(row.event_id),
            "changed_at": row.created_at,
            "revision": payload.get("revision", 0),
        }

    def _records(self, row, norm_value: bytes) -> list[OutRecord]:
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
            traceparent=origin.get(TRACEPARENT, ""),
        )
        extra = [(OUTBOX_ID, str(row.id).encode()), (VERSION, row.version.encode())]
        key = row.entity_id.encode()
        target = None  # by key: the canonical id's partition (module doc)
        headers = [*event.headers(), *extra]
        norm_headers = _with_type(headers, b"application/avro")
        out = [OutRecord(route.norm_topic, norm_value, key, norm_headers, target)]
        if route.tombstones and row.change == "delete":
            out.append(OutRecord(route.norm_topic, None, key, norm_headers, target))
        # The merged row's JSON as PostgreSQL wrote it, with the event id added: no second
        # parse and dump, and numbers keep the digits the database holds.
        egress_value = (
            row.payload_text[:-1] + ', "event_id": "' + str(row.event_id) + '"}'
        ).encode()
        out += [OutRecord(t, egress_value, key, headers, target) for t in route.egress_topics]
        return out


@functools.cache
def _trusted(model: type[Canonical]) -> type[Canonical]:
    """``model`` without its bounds check (``Bounded._within_bounds``), for re-reading rows
    built from entities that passed it: the check walks every value and cost more than the
    Avro encoding. Same fields, same ``avro_record``."""

    class Trusted(model):  # type: ignore[valid-type, misc]
        @model_validator(mode="after")
        def _within_bounds(self):
            return self

    Trusted.__name__ = Trusted.__qualname__ = f"Trusted{model.__name__}"
    return Trusted


def _as_source(row) -> SourceRecord:
    """The outbox row as the DLQ envelope's source: its payload (the merged row, JSON) and
    headers, keyed by the entity id; the coordinates are those of the raw record that made
    the change, so an operator can trace it."""
    headers = [(k, str(v).encode()) for k, v in (row.headers or {}).items()]
    headers += [
        (OUTBOX_ID, str(row.id).encode()),
        (VERSION, row.version.encode()),
        ("mm.event_id", str(row.event_id).encode()),
        ("mm.entity", row.entity.encode()),
        ("mm.change", row.change.encode()),
        ("content-type", b"application/json"),
    ]
    payload = row.payload_text.encode()
    value: bytes | None = payload
    if len(payload) > _DLQ_VALUE_MAX:
        # Too large for the broker (perhaps why it is here): the row keeps it in the outbox.
        value = None
        headers.append(("mm.payload_omitted", f"too large; outbox id {row.id} keeps it".encode()))
    return SourceRecord(
        row.source_topic,
        row.source_partition,
        row.source_offset,
        row.entity_id.encode(),
        value,
        headers,
    )


def _with_type(headers: list[tuple[str, bytes]], content_type: bytes) -> list[tuple[str, bytes]]:
    return [(k, content_type if k == "content-type" else v) for k, v in headers]
