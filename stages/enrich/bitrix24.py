"""Enrichment of Bitrix24 events: ids-only records in, full entities out, same partition.

For one batch of ``raw.bitrix24.event`` records (bridge events and poller sightings alike):

1. Records of one entity key collapse to one fetch (the API returns the current state,
   which covers every change the records announce); the last record decides: DELETE
   publishes a tombstone without a fetch.
2. The keys are marked as fetched for the bridge's near-duplicate filter BEFORE the portal
   is called (see connectors/bitrix24/event_dedupe.py).
3. Entities are fetched with ``batch`` (:mod:`stages.enrich.fetch`); one the API says is
   gone becomes a tombstone; one that cannot be read goes to the DLQ with the reason.
4. An entity whose (version, content digest) equals the last one published for its key is
   skipped: a change seen by both an event and the poller, or by two near-duplicate events,
   appears once downstream. ``bitrix24_published`` holds the last published per key.
5. Records go to ``raw.bitrix24.<entity>`` on the partition they were read from (the topics
   are co-partitioned), key unchanged; DLQ records likewise. Only after the broker
   acknowledged all of them is ``bitrix24_published`` updated, and only after that does the
   caller acknowledge the batch. A crash in between republishes with the same ``ce_id``,
   which the version-aware sink downstream ignores.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.bitrix24.event_dedupe import mark_fetched
from connectors.bitrix24.events import KINDS, EventRef
from mmstream.dlq.format import Failure, dead_letter
from mmstream.envelope import REQUEST_ID, TRACEPARENT, CloudEvent, change_id, now_iso
from mmstream.errors import InvalidRecord, classify, dead_letterable
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.metrics import DLQ_RECORDS
from mmstream.retry import retry_forever
from stages.enrich.entities import DELETED, digest, version_of
from stages.enrich.fetch import Failed, Fetched, Fetcher, Outcome
from stages.outbox.relay import VERSION
from stages.source_record import SourceRecord

log = logging.getLogger(__name__)
STAGE = "enrich"

_LAST = text(
    "SELECT entity_key, version, digest FROM bitrix24_published "
    "WHERE entity_key = ANY(CAST(:keys AS text[]))"
)
_PUBLISHED = text(
    "INSERT INTO bitrix24_published (entity_key, version, digest) "
    "SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:versions AS text[]), "
    "CAST(:digests AS text[])) "
    "ON CONFLICT (entity_key) DO UPDATE SET version = excluded.version, "
    "digest = excluded.digest, published_at = now()"
)


@dataclass
class _Group:
    """The records of one entity key in a batch; the last one names the change."""

    ref: EventRef
    event: dict[str, Any]
    records: list[tuple[SourceRecord, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class EnrichResult:
    """What one batch did."""

    published: int
    tombstones: int
    skipped: int
    dead_lettered: int


class Enricher:
    """Handles batches of ``raw.bitrix24.event``; replays are harmless."""

    def __init__(
        self,
        engine: AsyncEngine,
        fetcher: Fetcher,
        producer: AckedProducer,
        topics: dict[str, str],
        dlq_topic: str,
        *,
        origin: str,
    ) -> None:
        """``topics``: entity -> physical ``raw.bitrix24.<entity>``; ``origin``: the portal
        host for ``ce_source`` when a record names none (poller records)."""
        self.engine = engine
        self.fetcher = fetcher
        self.producer = producer
        self.topics = topics
        self.dlq_topic = dlq_topic
        self.origin = origin

    async def handle(self, records: list[SourceRecord]) -> EnrichResult:
        """Process the batch completely; returns only when every effect is durable."""
        started = datetime.now(UTC)
        groups, dead = _group(records)
        if groups:
            await retry_forever(
                lambda: self._mark(groups),
                stage="enrich",
                what="event fetch mark",
                entity="bitrix24",
            )
        outcomes: dict[str, Outcome] = await self.fetcher.fetch(
            [g.ref for g in groups.values() if g.ref.kind != "DELETE"]
        )
        last = await retry_forever(
            lambda: self._last_published(list(groups)),
            stage="enrich",
            what="published versions",
            entity="bitrix24",
        )
        skipped = 0
        built: list[tuple[_Group, OutRecord, tuple[str, str, str]]] = []
        for key, group in groups.items():
            outcome = outcomes.get(key)
            if isinstance(outcome, Failed):
                dead += [(rec, outcome.error, outcome.attempts) for rec, _ in group.records]
                continue
            entity = outcome.entity if isinstance(outcome, Fetched) else None
            try:
                version = DELETED if entity is None else version_of(group.ref, entity)
                dig = "" if entity is None else digest(entity)
                record = self._record(group, entity, version, dig)
            except Exception as exc:  # noqa: BLE001 — pure: an entity we cannot write is its own fault
                if not dead_letterable(exc):
                    raise
                dead += [(rec, exc, 1) for rec, _ in group.records]
                continue
            if last.get(key) == (version, dig):
                skipped += 1
                continue
            built.append((group, record, (key, version, dig)))
        built = await self._send(built, dead)
        tombstones = sum(1 for _, record, _ in built if record.value is None)
        rows = [row for _, _, row in built]
        now = datetime.now(UTC)
        out = [
            dead_letter(
                rec, Failure(exc, attempts, started, now), stage=STAGE, topic=self.dlq_topic
            )
            for rec, exc, attempts in dead
        ]
        if out:
            await retry_forever(
                lambda: self.producer.send_many(out),
                stage="enrich",
                what="enrich dlq publish",
                entity="bitrix24",
            )
        if rows:
            await retry_forever(
                lambda: self._store(rows),
                stage="enrich",
                what="published versions",
                entity="bitrix24",
            )
        for rec, error, attempts in dead:
            DLQ_RECORDS.labels(STAGE, classify(error).code).inc()
            log.error(
                "bitrix24 event dead-lettered",
                extra={
                    "stage": STAGE,
                    "error": str(error)[:500],
                    "attempts": attempts,
                    "source_partition": rec.partition,
                    "source_offset": rec.offset,
                },
            )
        result = EnrichResult(len(rows) - tombstones, tombstones, skipped, len(dead))
        log.info(
            "bitrix24 events enriched",
            extra={"records": len(records), "entities": len(groups), **result.__dict__},
        )
        return result

    async def _send(self, built, dead) -> list:
        """Publish the entities; one the broker refuses for itself (too large, …) goes to
        ``dead`` with the reason instead of failing the batch. Returns what was published."""
        try:
            await retry_forever(
                lambda: self.producer.send_many([r for _, r, _ in built]),
                stage="enrich",
                what="enrich publish",
                entity="bitrix24",
            )
            return built
        except Exception as exc:  # noqa: BLE001 — dead_letterable decides
            if not dead_letterable(exc):
                raise
            if len(built) == 1:
                dead += [(rec, exc, 1) for rec, _ in built[0][0].records]
                return []
        sent = []
        for item in built:  # rare: one record at a time finds the one the broker refuses
            sent += await self._send([item], dead)
        return sent

    def _record(
        self, group: _Group, entity: dict[str, Any] | None, version: str, dig: str
    ) -> OutRecord:
        ref, src = group.ref, group.records[-1][0]
        value = None
        if entity is not None:
            value = json.dumps(
                {**entity, "_event": group.event, "_fetched_at": now_iso()},
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
        event = CloudEvent(
            id=change_id(ref.entity, ref.key, DELETED if entity is None else f"{version}|{dig}"),
            source=f"/bitrix24/{group.event.get('domain') or self.origin}",
            type=f"ru.mastermobile.bitrix24.{ref.entity}{'.deleted' if entity is None else ''}.v1",
            subject=ref.key,
            time=_rfc3339(version) or now_iso(),
            request_id=src.header_map.get(REQUEST_ID, ""),
            traceparent=src.header_map.get(TRACEPARENT, ""),
        )
        return OutRecord(
            self.topics[ref.entity],
            value,
            ref.key.encode(),
            [*event.headers(), (VERSION, version.encode())],
            src.partition,
        )

    async def _mark(self, groups: dict[str, _Group]) -> None:
        seen = [
            (doc["member_id"], g.ref.key, doc["kind"])
            for g in groups.values()
            for _, doc in g.records
            if doc.get("member_id") and doc.get("kind") in KINDS
        ]
        if seen:
            async with self.engine.begin() as conn:
                await mark_fetched(conn, seen)

    async def _last_published(self, keys: list[str]) -> dict[str, tuple[str, str]]:
        if not keys:
            return {}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_LAST, {"keys": keys})).all()
        return {row.entity_key: (row.version, row.digest) for row in rows}

    async def _store(self, rows: list[tuple[str, str, str]]) -> None:
        keys, versions, digests = (list(col) for col in zip(*rows, strict=True))
        async with self.engine.begin() as conn:
            await conn.execute(_PUBLISHED, {"keys": keys, "versions": versions, "digests": digests})


def _group(
    records: list[SourceRecord],
) -> tuple[dict[str, _Group], list[tuple[SourceRecord, BaseException, int]]]:
    groups: dict[str, _Group] = {}
    dead: list[tuple[SourceRecord, BaseException, int]] = []
    for rec in records:
        try:
            doc = json.loads(rec.value) if rec.value is not None else None
            ref = EventRef.from_record(doc)
            if rec.key != ref.key.encode():
                # Keyed otherwise, it would sit in another partition than its entity's path.
                raise InvalidRecord(f"record key {rec.key!r} is not the entity key {ref.key!r}")
        except (ValueError, RecursionError) as exc:  # JSON too broken or too deep to read
            dead.append((rec, InvalidRecord(f"not JSON: {type(exc).__name__}: {exc}"), 1))
            continue
        except Exception as exc:  # noqa: BLE001 — reading a record is pure: its own fault
            if not dead_letterable(exc):
                raise
            dead.append((rec, exc, 1))
            continue
        assert isinstance(doc, dict)  # EventRef.from_record refused anything else
        group = groups.setdefault(ref.key, _Group(ref, doc))
        group.ref, group.event = ref, doc
        group.records.append((rec, doc))
    return groups, dead


def _rfc3339(version: str) -> str | None:
    try:
        datetime.fromisoformat(version)
    except ValueError:
        return None
    return version
