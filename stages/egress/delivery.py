"""Delivering canonical changes to a target system, once and in order per entity.

One :class:`EntityEgress` per ``egress.<target>.<entity>`` topic runs the part every flow
shares; an :class:`Action` says what one change means for the target (which calls, which
external key). The shared part:

* **once**: ``egress_delivery`` remembers the last outbox id delivered per entity, so a
  replay or a redelivery after a rebalance is skipped; actions make their writes
  idempotent themselves (look up by external key before a create, ``Idempotency-Key`` on
  1С writes), so a timeout followed by a retry never creates twice.
* **in order per entity, without blocking the partition**: a change that keeps failing
  transiently after a few in-line attempts is parked on the delayed, sequenced path
  (:mod:`stages.egress.sequencer`); later changes of the same entity wait behind it,
  other entities flow on.
* **one writer per entity**: two workers can hold the same partition at once (one still
  finishing its batch after a rebalance while the new owner replays from the committed
  offset), and a worker's delayed-retry timer may pick an entity its agent is delivering.
  Every delivery holds its entity's lease (a row in ``egress_lease``): the second comer
  waits, then sees the change delivered and skips it. A lease is a row, not a lock held on
  an open connection, so the deliveries in flight are not bounded by the database's
  connections (they fill ``batch`` calls: the portal's budget is only reached with ~100+
  in flight). Leases are short and renewed while their delivery runs
  (:meth:`EntityEgress.renew_leases`): a worker that dies leaves its entities to another
  after at most ``delivery_lease_s``. A worker that merely stalls (its renewals do not get
  through) is *fenced* (:mod:`stages.egress.fencing`): the lease's holder id is a fencing
  token checked before every target write and in the transaction that records the
  delivery, so a holder that lost its lease neither writes nor records; it starts over and
  finds the change delivered by the new holder.
* **nothing dropped silently**: what cannot be delivered (permanent error, retries
  exhausted, malformed record) goes to the flow's DLQ with the original bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mmstream import log as logctx
from mmstream.dlq.format import Failure, dead_letter
from mmstream.envelope import REQUEST_ID, TRACEPARENT
from mmstream.errors import InvalidRecord, TransientError, classify
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import DLQ_RECORDS, EGRESS_DELIVERIES
from mmstream.retry import RetryPolicy, count_retry, retry_forever
from stages import crosswalk
from stages.dlq.replay import REPLAY_HEADER
from stages.egress.fencing import CURRENT, Fence, LeaseLost, guard_write
from stages.egress.sequencer import Parked, Sequencer
from stages.outbox.relay import OUTBOX_ID
from stages.outbox.restate import current_row
from stages.source_record import SourceRecord

log = logging.getLogger(__name__)

# Table names re-stated from are entity names checked against this and looked up first.
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TABLE = text("SELECT to_regclass(quote_ident(:name))")

# A lease is taken when free or expired; each acquisition has its own holder id, so two
# deliveries of one worker exclude each other too.
_ACQUIRE = text(
    "INSERT INTO egress_lease (target, entity, entity_id, holder, expires_at) "
    "VALUES (:target, :entity, :id, :holder, now() + make_interval(secs => :ttl)) "
    "ON CONFLICT (target, entity, entity_id) DO UPDATE SET holder = excluded.holder, "
    "expires_at = excluded.expires_at WHERE egress_lease.expires_at < now() "
    # A retry of an acquisition whose commit went unanswered finds its own lease.
    "OR egress_lease.holder = excluded.holder RETURNING holder"
)
# The holder is the fencing token: a takeover replaces it, so a renewal (or a confirmation)
# that matches no row means the lease is lost. Matching the holder alone is enough: while the
# row carries our holder nobody else took the entity, even if it was past its expiry.
_RENEW = text(
    "UPDATE egress_lease SET expires_at = now() + make_interval(secs => :ttl) "
    "WHERE holder = ANY(CAST(:holders AS uuid[])) RETURNING holder"
)
_CONFIRM = text(
    "UPDATE egress_lease SET expires_at = now() + make_interval(secs => :ttl) "
    "WHERE target = :target AND entity = :entity AND entity_id = :id "
    "AND holder = :holder RETURNING holder"
)
_HOLDER = text(
    "SELECT holder FROM egress_lease WHERE target = :target AND entity = :entity "
    "AND entity_id = :id"
)
_RELEASE = text(
    "DELETE FROM egress_lease WHERE target = :target AND entity = :entity "
    "AND entity_id = :id AND holder = :holder"
)
#: How long a waiting delivery sleeps at most between tries for a busy lease.
LEASE_POLL_MAX_S = 0.5
# Read in the lease's transaction, after it is taken (a fresh snapshot: what an earlier
# holder committed is seen): the last change delivered, and whether changes are parked.
_STATE = text(
    "SELECT (SELECT last_outbox_id FROM egress_delivery WHERE target = :target "
    "AND entity = :entity AND entity_id = :id), EXISTS (SELECT 1 FROM egress_parked "
    "WHERE target = :target AND entity = :entity AND entity_id = :id), "
    "(SELECT external_id FROM crosswalk WHERE system = :target AND entity = :entity "
    "AND canonical_id = :id)"
)


@dataclass
class Held:
    """An entity's lease while a delivery holds it, and the entity's state read with it."""

    params: dict[str, Any] | None = None
    last_outbox_id: int | None = None
    parked: bool = False
    released: bool = False
    #: The delivery's crosswalk (its own entity's link read with the lease).
    xwalk: Crosswalk | None = None
    #: The lease's fencing token and known lifetime (None without a lease).
    fence: Fence | None = None

    def delivered(self, outbox_id: int) -> bool:
        """Whether the change with ``outbox_id`` (or a later one) was delivered already."""
        return self.last_outbox_id is not None and self.last_outbox_id >= outbox_id


_DELIVERED = text(
    "INSERT INTO egress_delivery (target, entity, entity_id, last_outbox_id, last_event_id, external_id) "
    "VALUES (:target, :entity, :id, :outbox_id, :event_id, :ext) "
    "ON CONFLICT (target, entity, entity_id) DO UPDATE SET "
    "last_outbox_id = GREATEST(egress_delivery.last_outbox_id, excluded.last_outbox_id), "
    "last_event_id = excluded.last_event_id, "
    "external_id = COALESCE(excluded.external_id, egress_delivery.external_id), delivered_at = now()"
)


# Tables whose rows may name the 1С object (names are fixed here, never taken from records).
_ONEC_TABLES = {
    name: text(f"SELECT external_ids->>'onec' FROM {name} WHERE id = CAST(:id AS uuid)")  # noqa: S608
    for name in (
        "counterparty",
        "warehouse",
        "employee",
        "organization",
        "shipment",
        "customer_order",
    )
}


class DependencyPending(TransientError):
    """The change refers to an object the target does not know yet (a price whose product
    has not been created in Bitrix24, a task whose courier has no user mapping yet). It is
    retried on the delayed path until the other flow has delivered it; if that never
    happens the change reaches the DLQ with this reason — deliver the dependency, then
    replay it."""

    code = "dependency_pending"


@dataclass(frozen=True)
class Change:
    """One change of a canonical entity as the outbox published it on an egress topic."""

    entity: str
    entity_id: str
    #: The merged row (canonical field names; references are canonical ids).
    payload: dict[str, Any]
    #: ``upsert`` or ``delete`` (from the CloudEvent type).
    change: str
    outbox_id: int
    event_id: str

    @property
    def deleted(self) -> bool:
        """True for a deletion (soft delete in the table, tombstone on the norm topic)."""
        return self.change == "delete" or bool(self.payload.get("deleted"))

    @classmethod
    def parse(cls, entity: str, record: SourceRecord) -> Change:
        """Read an egress record; :class:`InvalidRecord` when it is not one."""
        headers = record.header_map
        try:
            payload = json.loads(record.value or b"")
            ce_type = headers.get("ce_type", "")
            parts = ce_type.split(".")
            change = parts[-2] if len(parts) >= 2 and parts[-1].startswith("v") else "upsert"
            return cls(
                entity=entity,
                entity_id=str(payload["id"]),
                payload=payload,
                change=change,
                outbox_id=int(headers[OUTBOX_ID]),
                event_id=headers.get("ce_id") or str(payload.get("event_id") or ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            # RecursionError: JSON nested deeper than the parser goes is a poison record too.
            raise InvalidRecord(
                f"not an egress {entity} record: {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc


class Crosswalk:
    """The id crosswalk as actions see it.

    One per delivery: what the delivery's own entity is known as was read with its lease
    (``known``), and the links an action makes are kept until the delivery ends, then
    written in the transaction that records it (or releases the lease) — fewer round trips
    per change. A crash before that loses nothing: every action finds its object by the
    external key before creating one. Without ``deferred`` each call is its own short
    transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        deferred: bool = False,
        known: dict[tuple[str, str, str], str | None] | None = None,
    ) -> None:
        self.engine = engine
        self.deferred = deferred
        self._known: dict[tuple[str, str, str], str | None] = dict(known or {})
        self.pending: list[tuple[str, str, str, str]] = []

    async def external_id(self, entity: str, system: str, canonical_id: str | None) -> str | None:
        """The object's id in ``system``, if known (None for a None reference)."""
        if not canonical_id:
            return None
        cached = (entity, system, str(canonical_id))
        if cached in self._known:
            return self._known[cached]

        async def lookup() -> str | None:
            async with self.engine.connect() as conn:
                return await crosswalk.external_id(conn, entity, system, str(canonical_id))

        return await retry_forever(lookup, stage="egress", what="crosswalk lookup", entity=entity)

    async def canonical_id(self, entity: str, system: str, external_id: str) -> str | None:
        """The canonical id of ``system``'s object ``external_id``, if known."""

        async def lookup() -> str | None:
            async with self.engine.connect() as conn:
                return await crosswalk.canonical_id(conn, entity, system, str(external_id))

        return await retry_forever(lookup, stage="egress", what="crosswalk lookup", entity=entity)

    async def require(
        self, entity: str, system: str, canonical_id: str | None, what: str
    ) -> str | None:
        """Like :meth:`external_id`, but a reference the target does not know yet raises
        :class:`DependencyPending` (None stays None: no reference)."""
        if not canonical_id:
            return None
        found = await self.external_id(entity, system, canonical_id)
        if found is None:
            raise DependencyPending(f"{what}: {entity} {canonical_id} is not in {system} yet")
        return found

    async def require_onec(self, entity: str, canonical_id: str | None, what: str) -> str | None:
        """The 1С Ref_Key of a canonical object that 1С holds: an object born in 1С has it
        as its canonical id (its row carries ``external_ids.onec``), one born elsewhere has
        it once the crosswalk maps it. :class:`DependencyPending` when 1С does not hold it
        (e.g. a customer created only in Bitrix24); None stays None."""
        if not canonical_id:
            return None
        found = await self._onec_id(entity, str(canonical_id))
        if found is None:
            # A reference stored before its object was linked (a customer picked in Bitrix24
            # right after egress created it, the link held up by a lost answer or an outage)
            # is the object's derived id; once the link lands it stands for the canonical
            # object. Checked at every retry, so the wait ends with the link, not a replay.
            async def aliased() -> str | None:
                async with self.engine.connect() as conn:
                    return await crosswalk.alias(conn, str(canonical_id))

            real = await retry_forever(
                aliased, stage="egress", what="crosswalk alias", entity=entity
            )
            if real is not None:
                found = await self._onec_id(entity, real)
        if found is None:
            raise DependencyPending(
                f"{what}: {entity} {canonical_id} is not in 1С (create or "
                "link it in 1С, then replay)"
            )
        return found

    async def _onec_id(self, entity: str, canonical_id: str) -> str | None:
        found = await self.external_id(entity, "onec", canonical_id)
        if found is not None:
            return found
        if entity not in _ONEC_TABLES:
            raise ValueError(f"no table of 1С objects for {entity!r}")

        async def lookup() -> str | None:
            async with self.engine.connect() as conn:
                return await conn.scalar(_ONEC_TABLES[entity], {"id": canonical_id})

        return await retry_forever(lookup, stage="egress", what="1С id lookup", entity=entity)

    async def link(self, entity: str, system: str, canonical_id: str, external_id: str) -> None:
        """Record that ``canonical_id`` is ``external_id`` in ``system`` (idempotent). An
        older link of ``canonical_id`` there is replaced: actions link what they have just
        found or created in the target, so a record a user deleted there is forgotten."""

        self._known[(entity, system, str(canonical_id))] = str(external_id)
        if self.deferred:
            self.pending.append((entity, system, str(canonical_id), str(external_id)))
            return

        async def write() -> None:
            async with self.engine.begin() as conn:
                await crosswalk.relink(conn, entity, system, str(canonical_id), str(external_id))

        await retry_forever(write, stage="egress", what="crosswalk link", entity=entity)

    async def flush(self, conn: AsyncConnection) -> None:
        """Write the deferred links in the caller's transaction."""
        for entity, system, canonical_id, external_id in self.pending:
            await crosswalk.relink(conn, entity, system, canonical_id, external_id)


class Action(Protocol):
    """What one change of ``entity`` means for ``target``.

    ``apply`` makes the target reflect the change and returns the object's id there (or
    None when the change needs nothing from this target, e.g. a status the target does not
    track). It must be idempotent: it may run again after a timeout whose call did execute.
    Errors are classified by :func:`mmstream.errors.classify`: transient ones are retried
    (in line, then on the delayed path), permanent ones go to the DLQ.
    """

    target: ClassVar[str]
    entity: ClassVar[str]

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Deliver ``change``; the target's id of the object, or None."""


class EntityEgress:
    """Delivers the changes of one ``egress.<target>.<entity>`` topic through its action."""

    def __init__(
        self,
        engine: AsyncEngine,
        action: Action,
        producer: AckedProducer,
        policy: RetryPolicy,
        dlq_topic: str,
        *,
        inline_attempts: int = 3,
        inline_budget_s: float = 5.0,
        lease_s: float = 120.0,
        delivery_lease_s: float = 15.0,
        write_timeout_s: float | None = None,
        lease_engine: AsyncEngine | None = None,
        on_delivered: Callable[[Change, str | None], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.action = action
        self.target = action.target
        self.entity = action.entity
        self.producer = producer
        self.policy = policy
        self.dlq_topic = dlq_topic
        self.inline_attempts = inline_attempts
        self.inline_budget_s = inline_budget_s
        self.delivery_lease_s = delivery_lease_s
        # Lease statements (renewals, confirmations before writes) end well inside the lease:
        # a stalled one must not outlive what it protects (their own pool, short timeouts).
        self.lease_engine = lease_engine or engine
        self.lease_op_timeout_s = delivery_lease_s / 5
        #: The longest a target write may take: a write starts only while the lease outlasts
        #: it by a margin (the egress clients' timeouts are capped to it).
        self.write_timeout_s = delivery_lease_s / 2 if write_timeout_s is None else write_timeout_s
        if self.write_timeout_s + 2 * self.lease_op_timeout_s >= delivery_lease_s:
            raise ValueError("write_timeout_s must be below 3/5 of delivery_lease_s")
        #: Leases this instance holds now (renewed by renew_leases), by holder.
        self._holding: dict[uuid.UUID, Fence] = {}
        #: The last take's completion per entity key (see deliver_all).
        self._tails: dict[bytes, asyncio.Future[None]] = {}
        self.sequencer = Sequencer(engine, self.target, lease_s)
        self.on_delivered = on_delivered

    @property
    def name(self) -> str:
        """The agent / topic role name, ``egress.<target>.<entity>``."""
        return f"egress.{self.target}.{self.entity}"

    async def deliver_all(
        self,
        records: list[SourceRecord],
        *,
        concurrency: int = 16,
        slots: asyncio.Semaphore | None = None,
    ) -> list[str]:
        """Deliver a batch: each entity's changes in order, up to ``concurrency`` entities at
        once (or as many as ``slots`` — a semaphore the worker's agents share — lets through).
        Returns the outcomes in record order. Raises only what :meth:`deliver` raises (after
        the other deliveries of the batch have finished), so a fail-stop never leaves a
        delivery half-done in the background."""
        queues: dict[bytes, list[int]] = {}
        for i, record in enumerate(records):
            # Records without a key cannot be told apart: each is its own queue.
            queues.setdefault(record.key if record.key else f"#{i}".encode(), []).append(i)
        outcomes: list[str] = [""] * len(records)
        slots = slots if slots is not None else asyncio.Semaphore(concurrency)
        # Takes may overlap (the worker starts the next while this one drains): an entity's
        # changes of this take wait for its changes of the earlier take. Chained here,
        # before the first await, so the order is the order of the calls.
        loop = asyncio.get_running_loop()
        chain = {key: (self._tails.get(key), loop.create_future()) for key in queues}
        for key, (_, done) in chain.items():
            self._tails[key] = done
            # Nobody may wait on it: a failure it carries is still seen (raised below).
            done.add_done_callback(lambda f: f.cancelled() or f.exception())

        async def run(key: bytes, indexes: list[int]) -> None:
            before, done = chain[key]
            try:
                if before is not None:
                    # A failed earlier change of the entity fails this one too: a later
                    # change must never overtake it (the process is stopping anyway).
                    await asyncio.shield(before)
                async with slots:
                    for i in indexes:
                        outcomes[i] = await self.deliver(records[i])
            except asyncio.CancelledError:
                done.cancel()
                raise
            except BaseException as exc:
                if not done.done():
                    done.set_exception(exc)
                raise
            finally:
                if not done.done():
                    done.set_result(None)

        try:
            results = await asyncio.gather(
                *(run(k, ix) for k, ix in queues.items()), return_exceptions=True
            )
        finally:
            # Cancelled before a run started: its followers must not wait forever.
            for key, (_, done) in chain.items():
                if not done.done():
                    done.cancel()
                if self._tails.get(key) is done:
                    del self._tails[key]
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return outcomes

    async def deliver(self, record: SourceRecord) -> str:
        """Deliver one change; returns the outcome (delivered, skipped, parked, dead_lettered)."""
        headers = record.header_map
        with logctx.bind(
            event_id=headers.get("ce_id", ""),
            request_id=headers.get(REQUEST_ID, ""),
            traceparent=headers.get(TRACEPARENT, ""),
        ):
            # The key is the entity id (the relay keys egress records by canonical id).
            key = record.key.decode(errors="replace") if record.key else None
            while True:
                try:
                    async with self._exclusive(key) as held:
                        outcome = await self._deliver(record, held)
                    break
                except LeaseLost as exc:
                    # Nothing was written or recorded after the loss: start over. The next
                    # take waits for the new holder and finds the change delivered (or
                    # delivers it, if the new holder came for an older one).
                    EGRESS_DELIVERIES.labels(self.target, self.entity, "fenced").inc()
                    log.warning(
                        "egress lease lost, delivery starts over",
                        extra={
                            "target": self.target,
                            "entity": self.entity,
                            "entity_id": key,
                            "reason": str(exc),
                        },
                    )
        EGRESS_DELIVERIES.labels(self.target, self.entity, outcome).inc()
        return outcome

    @asynccontextmanager
    async def _exclusive(self, entity_id: str | None) -> AsyncIterator[Held]:
        """Run the block holding the entity's lease (see the module docstring)."""
        if not entity_id:  # not an egress record: it is dead-lettered, nothing to serialize
            yield Held(xwalk=Crosswalk(self.engine))
            return
        holder = uuid.uuid4()
        params = {
            "target": self.target,
            "entity": self.entity,
            "id": entity_id,
            "holder": holder,
            "ttl": self.delivery_lease_s,
        }
        held = Held(params=params)

        loop = asyncio.get_running_loop()

        async def acquire() -> bool:
            # Sent after this instant, so the database's expires_at is later than ours.
            started = loop.time()
            async with self.engine.begin() as conn:
                if await conn.scalar(_ACQUIRE, params) is None:
                    return False
                row = (await conn.execute(_STATE, params)).one()
            held.fence = Fence(
                params,
                started + self.delivery_lease_s,
                self.write_timeout_s,
                self.lease_op_timeout_s,
                self._confirm,
            )
            held.last_outbox_id, held.parked = row[0], bool(row[1])
            held.xwalk = Crosswalk(
                self.engine, deferred=True, known={(self.entity, self.target, entity_id): row[2]}
            )
            return True

        async def release() -> None:
            async with self.engine.begin() as conn:
                if held.xwalk is not None:
                    await held.xwalk.flush(conn)
                await conn.execute(_RELEASE, held.params)

        wait = 0.01
        while not await retry_forever(
            acquire, stage="egress", what="egress lease", entity=self.entity
        ):
            await asyncio.sleep(wait)  # another delivery of this entity is in flight
            wait = min(wait * 2, LEASE_POLL_MAX_S)
        assert held.fence is not None  # acquire() set it
        self._holding[holder] = held.fence
        token = CURRENT.set(held.fence)
        try:
            yield held
        finally:
            CURRENT.reset(token)
            self._holding.pop(holder, None)
            if not held.released:
                # Shielded: a delivery cancelled at shutdown still frees its entity at once
                # rather than after lease_s.
                await asyncio.shield(
                    retry_forever(
                        release, stage="egress", what="egress lease release", entity=self.entity
                    )
                )

    async def _deliver(self, record: SourceRecord, held: Held) -> str:
        first = datetime.now(UTC)
        try:
            change = Change.parse(self.entity, record)
        except InvalidRecord as exc:
            await self._dead_letter(record, exc, 1, first)
            return "dead_lettered"
        if held.delivered(change.outbox_id):
            restated = await self._restated(record, change, held)
            if restated is None:
                return "skipped"  # a redelivery (a rebalance, a restart) of something delivered
            change = restated
        if held.parked:
            # An earlier change of this entity is parked: never overtake it.
            await retry_forever(
                lambda: self.sequencer.park(
                    record, self.entity, change.entity_id, lease=held.params
                ),
                stage="egress",
                what="parking",
                entity=self.entity,
            )
            log.info(
                "parked behind an earlier change",
                extra={"entity_id": change.entity_id, "entity": self.entity},
            )
            return "parked"
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                external_id = await self._apply(change, held)
                break
            except LeaseLost:
                raise
            except Exception as exc:  # noqa: BLE001 — the policy decides via classify()
                err = classify(exc)
                if err.infrastructure and not err.retriable:
                    raise  # the database or broker refuses the statement: stop, replay later
                elapsed = time.monotonic() - started
                if not self.policy.should_retry(exc, attempt, elapsed):
                    # Only the lease's holder may give a change up: a worker that lost the
                    # entity meanwhile starts over (LeaseLost) instead of dead-lettering a
                    # change its new holder delivers or dead-letters itself.
                    await guard_write("dead-lettering")
                    await self._dead_letter(record, exc, attempt, first)
                    return "dead_lettered"
                delay = self.policy.delay(attempt, retry_after=err.retry_after)
                EGRESS_DELIVERIES.labels(self.target, self.entity, "retried").inc()
                count_retry("egress", self.entity, err)
                if attempt >= self.inline_attempts or elapsed + delay > self.inline_budget_s:
                    # Leave the partition: the delayed path retries it, in order.
                    # The failures' span by the monotonic clock: the database dates them.
                    async def park(
                        exc: BaseException = exc, delay: float = delay, n: int = attempt
                    ) -> None:
                        await self.sequencer.park(
                            record,
                            self.entity,
                            change.entity_id,
                            attempts=n,
                            error=exc,
                            failing_for_s=time.monotonic() - started,
                            retry_in_s=delay,
                            lease=held.params,
                        )

                    await retry_forever(park, stage="egress", what="parking", entity=self.entity)
                    self._log_failure(
                        "target call keeps failing, parked for a delayed retry",
                        change,
                        err.code,
                        exc,
                        attempt,
                        delay,
                    )
                    return "parked"
                self._log_failure(
                    "target call failed, retrying", change, err.code, exc, attempt, delay
                )
                await asyncio.sleep(delay)
        await self._record_delivery(change, external_id, held)
        log.info(
            "delivered",
            extra={
                "target": self.target,
                "entity": self.entity,
                "entity_id": change.entity_id,
                "external_id": external_id,
                "attempts": attempt,
            },
        )
        return "delivered"

    async def _restated(self, record: SourceRecord, change: Change, held: Held) -> Change | None:
        """For a change older than the entity's last delivery: None (skip it) — unless an
        operator replayed it from the DLQ. A later change delivered meanwhile may have
        written nothing (another system's own change is not echoed back: a courier's status,
        a company edited in Bitrix24), so the replayed change's data may never have reached
        the target, and skipping it would lose it. It is delivered as the entity's current
        row instead (stages/outbox/restate.py), which the action writes whoever wrote it
        last: the target gets today's state, never the replayed, older one. A replay of the
        very change delivered last (a second replay) is skipped: nothing came after it."""
        replay = record.header_map.get(REPLAY_HEADER)
        later = held.last_outbox_id is not None and held.last_outbox_id > change.outbox_id
        if not replay or not later or not _PLAIN_NAME.fullmatch(self.entity):
            return None

        async def read() -> str | None:
            async with self.engine.connect() as conn:
                if await conn.scalar(_TABLE, {"name": self.entity}) is None:
                    return None  # not a canonical table: nothing to re-state from
                return await conn.scalar(
                    current_row(self.entity), {"id": change.entity_id, "run": replay}
                )

        row = await retry_forever(
            read, stage="egress", what="reading a replayed change's row", entity=self.entity
        )
        if row is None:
            return None
        payload = json.loads(row)
        log.info(
            "replayed change superseded: the current row is delivered instead",
            extra={
                "target": self.target,
                "entity": self.entity,
                "entity_id": change.entity_id,
                "replayed_outbox_id": change.outbox_id,
            },
        )
        EGRESS_DELIVERIES.labels(self.target, self.entity, "restated").inc()
        return dataclasses.replace(
            change, payload=payload, change="delete" if payload.get("deleted") else "upsert"
        )

    async def _apply(self, change: Change, held: Held) -> str | None:
        """Run the action as its own task, so losing the lease can cancel it (the renewal
        fences it) without cancelling the delivery, which then starts over."""
        fence, xwalk = held.fence, held.xwalk
        assert xwalk is not None  # _exclusive() gives every delivery a crosswalk
        if fence is None:
            return await self.action.apply(change, xwalk)
        fence.raise_if_fenced()
        # The task copies this context: the action's writes see the fence (CURRENT).
        task = asyncio.ensure_future(self.action.apply(change, xwalk))
        fence.task = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if fence.fenced is not None and (current is None or not current.cancelling()):
                raise LeaseLost(fence.fenced) from None
            raise
        finally:
            fence.task = None

    async def _confirm(self, fence: Fence) -> bool:
        """Confirm and extend ``fence``'s lease (before a write): False when it was taken."""
        started = asyncio.get_running_loop().time()

        async def op() -> bool:
            async with self.lease_engine.begin() as conn:
                return await conn.scalar(_CONFIRM, fence.params) is not None

        held = await asyncio.wait_for(op(), self.lease_op_timeout_s)
        if held:
            fence.renewed(started)
        return held

    def _log_failure(
        self,
        message: str,
        change: Change,
        code: str,
        exc: BaseException,
        attempt: int,
        delay: float,
    ) -> None:
        log.warning(
            message,
            extra={
                "target": self.target,
                "entity": self.entity,
                "entity_id": change.entity_id,
                "error_code": code,
                "error": str(exc)[:300],
                "attempt": attempt,
                "retry_in_s": round(delay, 2),
            },
        )

    async def _record_delivery(
        self, change: Change, external_id: str | None, held: Held, *, release: bool = True
    ) -> None:
        """Remember the delivery; the lease ends in the same transaction (unless the
        caller still has work under it)."""
        params = {
            "target": self.target,
            "entity": self.entity,
            "id": change.entity_id,
            "outbox_id": change.outbox_id,
            "event_id": change.event_id or None,
            "ext": external_id,
        }

        async def write() -> None:
            async with self.engine.begin() as conn:
                # The fence, first (it locks the lease row until the commit): a holder that
                # lost its lease records nothing; the change stays for the new holder.
                if held.params is not None and await conn.scalar(_CONFIRM, held.params) is None:
                    if held.fence is not None:
                        held.fence.fence("lease taken over before the delivery was recorded")
                    raise LeaseLost("lease taken over before the delivery was recorded")
                if held.xwalk is not None:
                    await held.xwalk.flush(conn)
                await conn.execute(_DELIVERED, params)
                if release and held.params is not None:
                    await conn.execute(_RELEASE, held.params)
            held.released = release and held.params is not None
            if held.xwalk is not None:
                held.xwalk.pending.clear()

        await retry_forever(
            write, stage="egress", what="egress delivery record", entity=self.entity
        )
        if self.on_delivered is not None:
            await self.on_delivered(change, external_id)

    async def renew_leases(self) -> int:
        """Extend the leases of the deliveries in flight (the worker calls this every third
        of ``delivery_lease_s``); how many were renewed."""
        fences = dict(self._holding)
        if not fences:
            return 0
        started = asyncio.get_running_loop().time()

        async def renew() -> tuple[set[str], set[str]]:
            """(renewed holders, holders whose entity another holder now has). A holder
            that is neither released its lease meanwhile (its delivery was recorded while
            this ran) or let it expire: neither is a takeover, and a write after an expiry
            is refused by its own check (:meth:`_confirm`)."""
            async with self.lease_engine.begin() as conn:
                result = await conn.execute(
                    _RENEW, {"holders": [str(h) for h in fences], "ttl": self.delivery_lease_s}
                )
                renewed = {str(row[0]) for row in result}
                taken = set()
                for holder, fence in fences.items():
                    if str(holder) not in renewed and fence is not None:
                        now_held = await conn.scalar(_HOLDER, fence.params)
                        if now_held is not None and str(now_held) != str(holder):
                            taken.add(str(holder))
                return renewed, taken

        try:
            # One try, bounded well inside the lease: the next tick is the retry.
            renewed, taken = await asyncio.wait_for(renew(), self.lease_op_timeout_s)
        except Exception as exc:
            # Fence what the next tick (in a third of the lease, its statement bounded by
            # lease_op_timeout_s) cannot renew before it ends: their actions in flight are
            # cancelled. (A write they start meanwhile is checked on its own.)
            for fence in fences.values():
                if fence is not None and fence.remaining() < (
                    self.delivery_lease_s / 3 + self.lease_op_timeout_s
                ):
                    fence.fence(f"lease cannot be renewed before it ends: {exc!r}"[:300])
            raise
        for holder, fence in fences.items():
            if fence is None:
                continue
            if str(holder) in renewed:
                fence.renewed(started)
            elif str(holder) in taken:
                fence.fence("lease taken over (renewal found another holder)")
        return len(renewed)

    async def retry_parked(
        self, *, concurrency: int = 16, slots: asyncio.Semaphore | None = None
    ) -> int:
        """One pass of the delayed path: try every due head of this entity once, up to
        ``concurrency`` at once (or as many as ``slots`` lets through, as in
        :meth:`deliver_all`). The heads are of different entity ids, each retried under its
        own lease, so they need not wait for each other: one after the other, a backlog of
        parked heads (prices waiting for their products) drained at a few per second. Returns
        how many were released (delivered, skipped or dead-lettered). Raises what a retry
        raises, after the other retries of the pass have finished."""
        slots = slots if slots is not None else asyncio.Semaphore(concurrency)

        async def one(parked: Parked) -> str:
            async with slots:
                return await self._retry_head(parked)

        heads = await self.sequencer.claim_due(entity=self.entity)
        outcomes = await asyncio.gather(*(one(p) for p in heads), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(outcome not in ("parked", "fenced") for outcome in outcomes)

    async def _retry_head(self, parked: Parked) -> str:
        """Retry one claimed head of the delayed path; its outcome."""
        headers = parked.record.header_map
        with logctx.bind(
            event_id=headers.get("ce_id", ""),
            request_id=headers.get(REQUEST_ID, ""),
            traceparent=headers.get(TRACEPARENT, ""),
        ):
            try:
                async with self._exclusive(parked.entity_id) as held:
                    outcome = await self._retry(parked, held)
            except LeaseLost as exc:
                # The new holder has the entity; the head is due again at once.
                await retry_forever(
                    partial(self.sequencer.unclaim, parked),
                    stage="egress",
                    what="parking",
                    entity=self.entity,
                )
                log.warning(
                    "egress lease lost during a delayed retry",
                    extra={
                        "target": self.target,
                        "entity": self.entity,
                        "entity_id": parked.entity_id,
                        "reason": str(exc),
                    },
                )
                outcome = "fenced"
        EGRESS_DELIVERIES.labels(self.target, self.entity, outcome).inc()
        return outcome

    async def _retry(self, parked: Parked, held: Held) -> str:
        # The database's clock (the claim's now()): first_failure was dated by it too, so a
        # worker whose clock is off neither spends the budget early nor stretches it.
        record, now = parked.record, parked.claimed_at or datetime.now(UTC)
        first = parked.first_failure or now
        try:
            change = Change.parse(self.entity, record)
        except InvalidRecord as exc:
            await self._dead_letter(record, exc, parked.attempts + 1, first)
            await self.sequencer.release(parked)
            return "dead_lettered"
        if held.delivered(change.outbox_id):
            restated = await self._restated(record, change, held)
            if restated is None:
                await self.sequencer.release(parked)
                return "skipped"
            change = restated
        attempts = parked.attempts + 1
        try:
            external_id = await self._apply(change, held)
        except LeaseLost:
            raise
        except Exception as exc:  # noqa: BLE001 — the policy decides via classify()
            err = classify(exc)
            if err.infrastructure and not err.retriable:
                raise  # the database or broker refuses the statement: stop, replay later
            if not self.policy.should_retry(exc, attempts, (now - first).total_seconds()):
                await self._dead_letter(record, exc, attempts, first)
                await self.sequencer.release(parked)
                return "dead_lettered"
            delay = self.policy.delay(attempts, retry_after=err.retry_after)
            count_retry("egress", self.entity, err)
            await self.sequencer.reschedule(
                parked, attempts=attempts, error=exc, first_failure=first, retry_in_s=delay
            )
            self._log_failure("parked change failed again", change, err.code, exc, attempts, delay)
            return "parked"
        # The parked head goes before the lease: a change arriving meanwhile must not see
        # it still parked and queue behind it.
        await self._record_delivery(change, external_id, held, release=False)
        await self.sequencer.release(parked)
        log.info(
            "delivered from the delayed path",
            extra={
                "target": self.target,
                "entity": self.entity,
                "entity_id": change.entity_id,
                "external_id": external_id,
                "attempts": attempts,
            },
        )
        return "delivered"

    async def _dead_letter(
        self, record: SourceRecord, exc: BaseException, attempts: int, first: datetime
    ) -> None:
        out = dead_letter(
            record,
            Failure(exc, attempts, first, datetime.now(UTC)),
            stage="egress",
            topic=self.dlq_topic,
        )
        await retry_forever(
            lambda: self.producer.send(out), stage="egress", what="dlq publish", entity=self.entity
        )
        DLQ_RECORDS.labels("egress", classify(exc).code).inc()
        log.error(
            "egress record dead-lettered",
            extra={
                "target": self.target,
                "entity": self.entity,
                "error": str(exc)[:500],
                "attempts": attempts,
                "source_partition": record.partition,
                "source_offset": record.offset,
            },
        )
