"""The cash SLA watch (flow 4): every cash document (ПКО, РКО, advance report) 1С holds
unposted past its date + ``flows.cash_sla_s`` is a deviation, whether or not the middleware
ever gets to post it.

The posting (stages/egress/cash.py) raises a deviation only when it posts late or 1С
refuses. A document that stays unposted, waits behind egress lag, is parked on the delayed
retry path or was dead-lettered after its retries ran out would raise nothing; this watch
looks for them periodically, in PostgreSQL:

* the cash tables (``cash_receipt``, ``cash_expense``, ``advance_report``) hold every
  document 1С pushed, with ``posted`` and ``date``;
* ``egress_delivery`` says whether the document's current change reached the 1С egress and
  whether the middleware posted it (``external_id``: the posting action returns the
  Ref_Key only after ``/Post`` succeeded — 1С's own echo with ``posted`` comes later);
* ``egress_parked`` says it waits on the delayed path;
* the flow's DLQ topic (``dlq.egress.onec.<kind>``, read only when a document that did not
  reach 1С is about to be raised) says it was dead-lettered rather than still lagging.

Each deviation is raised once per document and kind: whoever raises it first — the posting
or the watch — claims the row of ``cash_sla_deviation`` (its primary key), then publishes
the event on ``events.cash_sla`` and counts ``mm_cash_sla_deviations_total`` (alert
MMCashSLADeviation). The other one finds the claim and raises nothing, so a document the
watch raised as ``lagging`` and the egress then posts late is one deviation, not two. The
claim is committed before the event is published; a claim whose publication a crash
interrupted is published again by a later tick (same CloudEvent id: consumers can drop a
repeat). Restarts change nothing: what was raised is in PostgreSQL.

Where it runs: a timer of the egress worker (``stages/worker.py``, every
``flows.cash_sla_watch_interval_s``; 0 turns it off). The egress worker already holds what
the watch needs (the database, the producer of ``events.cash_sla``, the settings of the cash
flow) and is deployed wherever cash documents are posted, so no extra process or CronJob has
to be run and monitored. Every egress replica ticks; a transaction-level PostgreSQL advisory
lock lets one of them scan at a time (the others skip that tick), and the claim's primary key
keeps a deviation single even if two ever raced. ``flows.cash_sla_watch_horizon_s`` bounds
how far back it looks: a first start on a base with years of forgotten drafts does not
raise each of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import CASH_SLA_DEVIATIONS
from mmstream.settings import Settings
from stages.egress.events import event_record, publish

log = logging.getLogger(__name__)

EVENT_TOPIC = "events.cash_sla"
#: The egress target of the cash flow (the posting actions' ``target``).
TARGET = "onec"
#: The cash document kinds (entity = table name).
KINDS = ("cash_receipt", "cash_expense", "advance_report")
#: The states the watch raises a document in; the posting raises ``posted`` / ``refused``.
STATES = ("unposted", "lagging", "parked", "dead_lettered")
#: Stable part of the CloudEvent id: one deviation per document, whoever raises it.
DEDUPE = "sla"
#: Documents one tick looks at per kind (the oldest first); the next tick takes the rest.
BATCH = 500
#: A claim still unpublished this long after it was made is published again (its raiser
#: crashed); long enough for a live raiser to have published it.
REPUBLISH_AFTER_S = 120.0
#: A document whose current change has not reached 1С is raised as ``lagging`` only when
#: that change is older than this: a late document that has just arrived is left to the
#: posting, which reports it with the lateness it was posted at.
LAGGING_GRACE_S = 60.0
#: The watch's advisory lock key (one scan at a time over all egress replicas).
LOCK_KEY = 0x6D6D_6361_7368  # "mmcash"


# -- pure ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CashRow:
    """A cash document as the watch reads it, with what the egress knows of it."""

    entity: str
    id: str
    number: str
    date: datetime | None  # aware (timestamptz)
    posted: bool
    deleted: bool
    source: str
    event_id: str
    amount: Any = None
    employee_id: str | None = None
    #: The last change of it the 1С egress delivered (None: none yet).
    delivered_event_id: str | None = None
    #: The egress posted it (``egress_delivery.external_id`` is set).
    posted_by_egress: bool = False
    #: A change of it waits on the delayed retry path.
    parked: bool = False
    #: When its current version was stored (the sink's clock: the database's).
    changed_at: datetime | None = None


def state_of(row: CashRow, now: datetime, sla_s: float, lagging_grace_s: float = 0.0) -> str | None:
    """The state a document past its SLA is raised in, or None when there is nothing to
    raise (yet): not 1С's, deleted, posted (by 1С or by the middleware), undated, within the
    SLA (``now - date <= sla_s``, as at posting time), or lagging for less than
    ``lagging_grace_s`` (the posting may still report it)."""
    if row.source != "onec" or row.deleted or row.posted or row.date is None:
        return None
    if (now - row.date).total_seconds() <= sla_s:
        return None
    current = row.delivered_event_id is not None and row.delivered_event_id == row.event_id
    if current and row.posted_by_egress:
        return None  # posted by the middleware; the posting judged it (1С's echo is pending)
    if row.parked:
        return "parked"
    if current:
        return "unposted"  # delivered, not posted (posting off, or nothing the egress could do)
    # Its change has not reached 1С: behind egress lag, or dead-lettered.
    if row.changed_at is not None and (now - row.changed_at).total_seconds() < lagging_grace_s:
        return None
    return "lagging"


def overdue(
    rows: Iterable[CashRow], now: datetime, sla_s: float, lagging_grace_s: float = 0.0
) -> list[tuple[CashRow, str]]:
    """The documents to raise and their states, oldest first."""
    found = [
        (row, state)
        for row in rows
        if (state := state_of(row, now, sla_s, lagging_grace_s)) is not None
    ]
    return sorted(found, key=lambda pair: (pair[0].date, pair[0].entity, pair[0].id))


def watch_event(row: CashRow, state: str, now: datetime, sla_s: float) -> dict[str, Any]:
    """The ``events.cash_sla`` event of a document past its SLA (the posting's shape)."""
    assert row.date is not None
    took = (now - row.date).total_seconds()
    return {
        "entity": row.entity,
        "id": row.id,
        "number": row.number or "",
        "date": row.date.isoformat(),
        "outcome": state,
        "at": now.isoformat(),
        "sla_s": sla_s,
        "late_by_s": round(max(took - sla_s, 0.0), 3),
        "amount": None if row.amount is None else str(row.amount),
        "employee_id": row.employee_id,
    }


# -- claims (shared with the posting) ------------------------------------------------------

_CLAIM = text(
    "INSERT INTO cash_sla_deviation (entity, document_id, outcome, raised_by, event) "
    "VALUES (:entity, :id, :outcome, :by, :event) "
    "ON CONFLICT (entity, document_id) DO NOTHING RETURNING document_id"
).bindparams(bindparam("event", type_=JSONB))
_PUBLISHED = text(
    "UPDATE cash_sla_deviation SET published_at = now() "
    "WHERE entity = :entity AND document_id = :id"
)
_STALE = text(
    "SELECT entity, document_id, event FROM cash_sla_deviation "
    "WHERE published_at IS NULL AND raised_at < now() - make_interval(secs => :after) "
    "ORDER BY raised_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)


async def claim(conn: AsyncConnection, event: dict[str, Any], raised_by: str) -> bool:
    """Claim the deviation of ``event``'s document; False when it was raised already."""
    row = await conn.execute(
        _CLAIM,
        {
            "entity": event["entity"],
            "id": event["id"],
            "outcome": event["outcome"],
            "by": raised_by,
            "event": event,
        },
    )
    return row.first() is not None


async def raise_claimed(
    engine: AsyncEngine,
    producer: AckedProducer,
    topic: str,
    event: dict[str, Any],
    *,
    raised_by: str,
) -> None:
    """Publish a claimed deviation, count it, and mark it published."""
    entity, doc = event["entity"], event["id"]
    await publish(
        producer, event_record(topic, "cash_sla", entity, doc, event, dedupe=DEDUPE), entity
    )
    CASH_SLA_DEVIATIONS.labels(entity).inc()
    log.warning(
        "cash document past its SLA",
        extra={
            "entity": entity,
            "entity_id": doc,
            "outcome": event["outcome"],
            "late_by_s": event["late_by_s"],
            "sla_s": event["sla_s"],
            "raised_by": raised_by,
        },
    )
    async with engine.begin() as conn:
        await conn.execute(_PUBLISHED, {"entity": entity, "id": doc})


# -- the watch ------------------------------------------------------------------------------

_CANDIDATES = """
SELECT d.id::text AS id, d.number, d.date, d.posted, d.deleted, d.source, d.changed_at,
       d.event_id::text AS event_id, d.amount, d.employee_id::text AS employee_id,
       e.last_event_id::text AS delivered_event_id, e.external_id IS NOT NULL AS posted_by_egress,
       EXISTS (SELECT 1 FROM egress_parked p WHERE p.target = :target
               AND p.entity = '{kind}' AND p.entity_id = d.id::text) AS parked
FROM {kind} d
LEFT JOIN egress_delivery e
       ON e.target = :target AND e.entity = '{kind}' AND e.entity_id = d.id::text
WHERE d.source = 'onec' AND NOT d.deleted AND NOT d.posted
  AND d.date < :now - make_interval(secs => :sla)
  AND d.date >= :now - make_interval(secs => :horizon)
  AND NOT EXISTS (SELECT 1 FROM cash_sla_deviation r
                  WHERE r.entity = '{kind}' AND r.document_id = d.id::text)
  -- Posted by the egress, 1С's echo pending (state_of says so too): left out here, or many
  -- of them would fill every batch and hide the documents behind them.
  AND NOT COALESCE(e.last_event_id = d.event_id AND e.external_id IS NOT NULL, false)
ORDER BY d.date
LIMIT :limit
"""

#: ``dead_lettered(entity, ids)``: which of ``ids`` are in the flow's DLQ.
DeadLettered = Callable[[str, set[str]], Awaitable[set[str]]]


def dlq_lookup(settings: Settings) -> DeadLettered:
    """Which documents are in ``dlq.egress.onec.<kind>`` (a scan of the topic from its
    beginning, in a thread: run only for documents about to be raised as lagging)."""

    def scan(entity: str, ids: set[str]) -> set[str]:
        from mmstream.dlq.reader import DlqReader

        reader = DlqReader(
            settings, settings.topic(f"dlq.egress.{TARGET}.{entity}"), idle_timeout_s=10.0
        )
        return {e.entity for e in reader.scan() if e.entity in ids}

    async def lookup(entity: str, ids: set[str]) -> set[str]:
        try:
            return await asyncio.to_thread(scan, entity, ids)
        except Exception:  # noqa: BLE001 — the state is a detail; the deviation is raised anyway
            log.warning(
                "DLQ not read: documents stay 'lagging'", exc_info=True, extra={"entity": entity}
            )
            return set()

    return lookup


class CashSlaWatch:
    """One tick: raise every cash document past its SLA not raised yet (module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AckedProducer,
        settings: Settings,
        *,
        dead_lettered: DeadLettered | None = None,
        lagging_grace_s: float = LAGGING_GRACE_S,
    ) -> None:
        self.engine = engine
        self.producer = producer
        self.sla_s = settings.flows.cash_sla_s
        self.horizon_s = settings.flows.cash_sla_watch_horizon_s
        self.topic = settings.topic(EVENT_TOPIC)
        self.lagging_grace_s = lagging_grace_s
        self.dead_lettered = dead_lettered or dlq_lookup(settings)

    async def tick(self) -> int:
        """Scan and raise; how many deviations were raised (0 when another replica holds
        the scan)."""
        async with self.engine.begin() as conn:
            if not await self._lock(conn):
                return 0
            now = await conn.scalar(text("SELECT now()"))  # the database's clock, as parking
            rows = [row for kind in KINDS for row in await self._candidates(conn, kind, now)]
        # The DLQ is read outside any transaction: no database connection waits on Kafka.
        found = await self._refine(overdue(rows, now, self.sla_s, self.lagging_grace_s))
        async with self.engine.begin() as conn:
            if not await self._lock(conn):
                return 0  # another replica took over meanwhile; it raises them
            raised = []
            for row, state in found:
                event = watch_event(row, state, now, self.sla_s)
                if await claim(conn, event, "watch"):  # False: the posting was first
                    raised.append(event)
            stale = [
                dict(r.event)
                for r in await conn.execute(_STALE, {"after": REPUBLISH_AFTER_S, "limit": BATCH})
            ]
        # Claims are committed: a crash from here on leaves them for a later tick, which
        # publishes them again (at least once; the CloudEvent id is stable per document).
        for event in raised:
            await raise_claimed(self.engine, self.producer, self.topic, event, raised_by="watch")
        for event in stale:
            log.info(
                "publishing a deviation a crash left unpublished",
                extra={"entity": event["entity"], "entity_id": event["id"]},
            )
            await raise_claimed(self.engine, self.producer, self.topic, event, raised_by="retry")
        return len(raised)

    @staticmethod
    async def _lock(conn: AsyncConnection) -> bool:
        """One replica at a time (held until the transaction ends)."""
        return bool(
            await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        )

    async def _candidates(self, conn: AsyncConnection, kind: str, now: datetime) -> list[CashRow]:
        result = await conn.execute(
            text(_CANDIDATES.format(kind=kind)),
            {
                "target": TARGET,
                "now": now,
                "sla": self.sla_s,
                "horizon": self.horizon_s,
                "limit": BATCH,
            },
        )
        return [CashRow(entity=kind, **mapping) for mapping in result.mappings()]

    async def _refine(self, found: list[tuple[CashRow, str]]) -> list[tuple[CashRow, str]]:
        """``lagging`` documents found in their DLQ are ``dead_lettered``."""
        lagging: dict[str, set[str]] = {}
        for row, state in found:
            if state == "lagging":
                lagging.setdefault(row.entity, set()).add(row.id)
        dead = {
            (kind, doc)
            for kind, ids in lagging.items()
            for doc in await self.dead_lettered(kind, ids)
        }
        return [
            (row, "dead_lettered" if state == "lagging" and (row.entity, row.id) in dead else state)
            for row, state in found
        ]
