"""One writer per entity (stages/egress/delivery.py): deliveries of one entity by two
workers never overlap in the target, a dead worker's lease expires, a live one is waited
for. Real PostgreSQL; the action records what the target would have seen."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import ClassVar

import psycopg

from mmstream.db.engine import async_engine
from mmstream.kafka.producer import AckedProducer
from mmstream.retry import RetryPolicy
from stages.egress.delivery import Change, Crosswalk, EntityEgress
from stages.outbox.relay import OUTBOX_ID
from stages.source_record import SourceRecord


class SlowTarget:
    """An action that takes a while per change and notes how many run at once."""

    target: ClassVar[str] = "test"
    entity: ClassVar[str] = "thing"

    def __init__(self, delay_s: float = 0.2) -> None:
        self.delay_s = delay_s
        self.active = 0
        self.most = 0
        self.applied: list[int] = []

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(self.delay_s)
            self.applied.append(change.outbox_id)
        finally:
            self.active -= 1
        return "ext"


def record(entity_id: str, outbox_id: int) -> SourceRecord:
    value = json.dumps({"id": entity_id, "n": outbox_id}).encode()
    headers = [
        (OUTBOX_ID, str(outbox_id).encode()),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"ru.mastermobile.thing.upsert.v1"),
    ]
    return SourceRecord(
        topic="egress.test.thing",
        partition=0,
        offset=outbox_id,
        key=entity_id.encode(),
        value=value,
        headers=headers,
    )


def egress(settings, engine, action, producer) -> EntityEgress:
    # The producer only serves dead letters, which these changes never become.
    return EntityEgress(
        engine,
        action,
        producer,
        RetryPolicy.from_settings(settings.retry),
        "dlq.egress.test.thing",
        lease_s=30.0,
    )


def pg(settings) -> psycopg.Connection:
    url = settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True)


def test_two_workers_never_deliver_one_entity_at_once(settings):
    target = SlowTarget()

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="lease-test")
        try:
            first = egress(settings, engine, target, producer)
            second = egress(settings, engine, target, producer)
            thing = str(uuid.uuid4())
            # The same change reaches both (a rebalance), plus a newer one on the second.
            return await asyncio.gather(
                first.deliver(record(thing, 1)),
                second.deliver_all([record(thing, 1), record(thing, 2)]),
            )
        finally:
            producer.close()
            await engine.dispose()

    one, two = asyncio.run(main())
    assert target.most == 1
    assert sorted([one, *two]) == ["delivered", "delivered", "skipped"]
    assert target.applied == [1, 2]
    with pg(settings) as conn:
        assert conn.execute("SELECT count(*) FROM egress_lease").fetchone() == (0,)


def test_a_dead_workers_lease_expires_and_a_live_one_is_waited_for(settings):
    target = SlowTarget(delay_s=0)
    dead, live = str(uuid.uuid4()), str(uuid.uuid4())
    with pg(settings) as conn:
        for ident, expires in (
            (dead, "now() - interval '1 second'"),
            (live, "now() + interval '1 hour'"),
        ):
            conn.execute(
                "INSERT INTO egress_lease (target, entity, entity_id, holder, expires_at) "
                f"VALUES ('test', 'thing', %s, %s, {expires})",
                (ident, uuid.uuid4()),
            )

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="lease-test")
        try:
            worker = egress(settings, engine, target, producer)
            assert await worker.deliver(record(dead, 1)) == "delivered"
            waiting = asyncio.create_task(worker.deliver(record(live, 2)))
            await asyncio.sleep(1.0)
            blocked = not waiting.done()
            with pg(settings) as conn:  # the live holder finishes
                conn.execute("DELETE FROM egress_lease WHERE entity_id = %s", (live,))
            return blocked, await asyncio.wait_for(waiting, 10)
        finally:
            producer.close()
            await engine.dispose()

    blocked, outcome = asyncio.run(main())
    assert blocked and outcome == "delivered"
    assert target.applied == [1, 2]


def test_a_long_delivery_keeps_its_lease_by_renewing_it(settings):
    target = SlowTarget(delay_s=1.5)
    thing = str(uuid.uuid4())

    def expiry():
        with pg(settings) as conn:
            row = conn.execute(
                "SELECT expires_at - now() FROM egress_lease WHERE entity_id = %s", (thing,)
            ).fetchone()
        return row[0].total_seconds() if row else None

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="lease-test")
        try:
            worker = EntityEgress(
                engine,
                target,
                producer,
                RetryPolicy.from_settings(settings.retry),
                "dlq.egress.test.thing",
                delivery_lease_s=1.0,
            )
            running = asyncio.create_task(worker.deliver(record(thing, 1)))
            await asyncio.sleep(0.8)
            before = expiry()
            renewed = await worker.renew_leases()
            after = expiry()
            return before, renewed, after, await running, await worker.renew_leases()
        finally:
            producer.close()
            await engine.dispose()

    before, renewed, after, outcome, idle = asyncio.run(main())
    assert renewed == 1 and after > before  # pushed out again while the delivery runs
    assert outcome == "delivered" and idle == 0  # nothing held once it is done


class FailingFirst(EntityEgress):
    """An egress whose delivery of offset 1 fails the way a fail-stop error does (after a
    while), to see what a later take of the same entity does meanwhile."""

    async def deliver(self, record: SourceRecord) -> str:
        if record.offset == 1:
            await asyncio.sleep(0.3)
            raise RuntimeError("dead-letter topic refused the record")
        return await super().deliver(record)


def test_a_later_take_never_overtakes_a_failed_change_of_its_entity(settings):
    target = SlowTarget(delay_s=0)
    thing, other = str(uuid.uuid4()), str(uuid.uuid4())

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="lease-test")
        try:
            worker = FailingFirst(
                engine,
                target,
                producer,
                RetryPolicy.from_settings(settings.retry),
                "dlq.egress.test.thing",
            )
            first = asyncio.create_task(worker.deliver_all([record(thing, 1)]))
            await asyncio.sleep(0)  # the first take chains its entity before the second
            second = worker.deliver_all([record(thing, 2), record(other, 3)])
            return await asyncio.gather(first, second, return_exceptions=True)
        finally:
            producer.close()
            await engine.dispose()

    first, second = asyncio.run(main())
    assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError)
    assert target.applied == [3]  # the other entity went on; change 2 did not overtake 1
