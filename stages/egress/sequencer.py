"""The delayed, sequenced retry path of egress (design.md invariant 6).

A change that still fails after its in-line attempts leaves its partition and is *parked*
in PostgreSQL with the time of its next attempt. Every later change of the same entity is
parked behind it without being tried, so an entity never overtakes itself, while the other
entities of the partition flow on. A retry loop takes the *head* of each entity's queue when
it is due; success releases it and lets the next one go, exhaustion sends it to the DLQ (the
entity is not blocked forever). Parked rows are durable before the source offset is
committed, so a crash loses nothing; claims are leases, so a dead worker's claim expires.

Every time here is the database's: due times are set as ``now() + interval`` and compared
with ``now()`` in the same server, failures are dated by it and the time budget is measured
on it (``Parked.claimed_at``). Workers' clocks may be skewed against each other and against
the database; a due time computed by one and compared by another would starve a change or
retry it early.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.errors import classify
from stages.egress.fencing import LeaseLost
from stages.source_record import SourceRecord

_PARK = text(
    "INSERT INTO egress_parked (target, entity, entity_id, source_topic, source_partition, "
    "source_offset, record_key, record_value, record_headers, attempts, first_failure, "
    "last_failure, last_error, error_code, next_attempt_at) "
    "VALUES (:target, :entity, :entity_id, :topic, :partition, :offset, :key, :value, "
    "CAST(:headers AS jsonb), :attempts, "
    "CASE WHEN :failed THEN now() - make_interval(secs => :failing_for) END, "
    "CASE WHEN :failed THEN now() END, :last_error, "
    ":error_code, now() + make_interval(secs => :retry_in)) "
    "ON CONFLICT (target, source_topic, source_partition, source_offset) DO NOTHING"
)
# The head of every entity queue that is due, claimed for a lease in the same statement so
# two workers never retry the same change at once.
_CLAIM = text(
    "WITH heads AS ("
    "  SELECT DISTINCT ON (entity, entity_id) id, next_attempt_at FROM egress_parked "
    "  WHERE target = :target AND (CAST(:entity AS text) IS NULL OR entity = :entity) "
    "  ORDER BY entity, entity_id, id"
    "), due AS ("
    "  SELECT id FROM heads WHERE next_attempt_at <= now() ORDER BY next_attempt_at LIMIT :limit"
    ") "
    "UPDATE egress_parked p SET next_attempt_at = now() + make_interval(secs => :lease) "
    "FROM due WHERE p.id = due.id AND p.next_attempt_at <= now() "
    "RETURNING p.*, now() AS claimed_at"
)
# The parking delivery's lease, checked (and the row locked) in the parking transaction.
_HOLDS = text(
    "SELECT 1 FROM egress_lease WHERE target = :target AND entity = :entity "
    "AND entity_id = :id AND holder = :holder FOR UPDATE"
)
_UNCLAIM = text("UPDATE egress_parked SET next_attempt_at = now() WHERE id = :id")
_RELEASE = text("DELETE FROM egress_parked WHERE id = :id")
_RESCHEDULE = text(
    "UPDATE egress_parked SET attempts = :attempts, first_failure = :first_failure, "
    "last_failure = now(), last_error = :last_error, error_code = :error_code, "
    "next_attempt_at = now() + make_interval(secs => :retry_in) WHERE id = :id"
)
_BACKLOG = text(
    "SELECT count(*), extract(epoch FROM now() - min(parked_at)) "
    "FROM egress_parked WHERE target = :target"
)


@dataclass(frozen=True)
class Parked:
    """A parked change: the original record and its failure history."""

    id: int
    entity: str
    entity_id: str
    record: SourceRecord
    attempts: int
    first_failure: datetime | None
    last_error: str | None
    #: The database's time when it was claimed (the clock its budget is measured on).
    claimed_at: datetime | None = None


def _headers(record: SourceRecord) -> str:
    return json.dumps([[k, v.hex()] for k, v in record.headers])


def _record(row) -> SourceRecord:
    headers = [(k, bytes.fromhex(v)) for k, v in (row.record_headers or [])]
    return SourceRecord(
        row.source_topic,
        row.source_partition,
        row.source_offset,
        bytes(row.record_key) if row.record_key is not None else None,
        bytes(row.record_value) if row.record_value is not None else None,
        headers,
    )


class Sequencer:
    """The parking lot of one egress target."""

    def __init__(self, engine: AsyncEngine, target: str, lease_s: float) -> None:
        self.engine = engine
        self.target = target
        self.lease_s = lease_s

    async def park(
        self,
        record: SourceRecord,
        entity: str,
        entity_id: str,
        *,
        attempts: int = 0,
        error: BaseException | None = None,
        failing_for_s: float = 0.0,
        retry_in_s: float = 0.0,
        lease: dict[str, Any] | None = None,
    ) -> None:
        """Park ``record`` at the tail of its entity's queue (idempotent per source offset),
        due ``retry_in_s`` from now; its first failure ``failing_for_s`` ago (both by the
        database's clock). With ``lease`` (the parking delivery's lease row key and
        holder) only while that lease is still held (:class:`LeaseLost` otherwise)."""
        async with self.engine.begin() as conn:
            if lease is not None and await conn.scalar(_HOLDS, lease) is None:
                raise LeaseLost("lease taken over before the change was parked")
            await conn.execute(
                _PARK,
                {
                    "target": self.target,
                    "entity": entity,
                    "entity_id": entity_id,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "key": record.key,
                    "value": record.value,
                    "headers": _headers(record),
                    "attempts": attempts,
                    "failed": error is not None,
                    "failing_for": max(0.0, failing_for_s),
                    "last_error": str(error)[:1000] if error else None,
                    "error_code": classify(error).code if error else None,
                    "retry_in": max(0.0, retry_in_s),
                },
            )

    async def claim_due(self, limit: int = 50, *, entity: str | None = None) -> list[Parked]:
        """Claim the heads that are due (for ``lease_s``), of one entity type or all; oldest
        due first."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    _CLAIM,
                    {
                        "target": self.target,
                        "limit": limit,
                        "lease": self.lease_s,
                        "entity": entity,
                    },
                )
            ).all()
        return [
            Parked(
                r.id,
                r.entity,
                r.entity_id,
                _record(r),
                r.attempts,
                r.first_failure,
                r.last_error,
                r.claimed_at,
            )
            for r in sorted(rows, key=lambda r: r.id)
        ]

    async def release(self, parked: Parked) -> None:
        """The change was delivered or dead-lettered: the next one of the entity may go."""
        async with self.engine.begin() as conn:
            await conn.execute(_RELEASE, {"id": parked.id})

    async def reschedule(
        self,
        parked: Parked,
        *,
        attempts: int,
        error: BaseException,
        first_failure: datetime,
        retry_in_s: float,
    ) -> None:
        """Another failed attempt: record it and set the next one, ``retry_in_s`` from now
        by the database's clock (``first_failure`` is a database time too)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                _RESCHEDULE,
                {
                    "id": parked.id,
                    "attempts": attempts,
                    "first_failure": first_failure,
                    "last_error": str(error)[:1000],
                    "error_code": classify(error).code,
                    "retry_in": max(0.0, retry_in_s),
                },
            )

    async def unclaim(self, parked: Parked) -> None:
        """Give a claimed head back at once (its delivery lost the entity's lease)."""
        async with self.engine.begin() as conn:
            await conn.execute(_UNCLAIM, {"id": parked.id})

    async def backlog(self) -> tuple[int, float]:
        """(parked changes, age in seconds of the oldest) of this target."""
        async with self.engine.connect() as conn:
            count, age = (await conn.execute(_BACKLOG, {"target": self.target})).one()
        return int(count), float(age or 0.0)
