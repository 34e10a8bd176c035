"""Fenced egress leases (stages/egress/fencing.py): a worker whose lease was taken over
while it stalled never writes to the target after the new holder, and never records.

Real PostgreSQL, the Bitrix24 emulator (ASGI) behind the egress worker's packed, fenced
client, and the real product action. Worker A's lookup is held by the emulator (a slow
answer) past its lease while its renewals stall; worker B takes the entity and delivers
both changes. What the emulator executed must be one write per change, in order."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.emulators.bitrix24 import create_app
from mmstream.db.engine import async_engine
from mmstream.errors import PermanentError
from mmstream.kafka.producer import AckedProducer
from mmstream.retry import RetryPolicy
from mmstream.settings import Bitrix24Settings, RetrySettings
from stages.egress.actions import Targets
from stages.egress.bitrix24_product import ProductAction
from stages.egress.delivery import EntityEgress
from stages.egress.fencing import CURRENT, Fence, FencedBitrix24Client, LeaseLost, lease_engine
from stages.outbox.relay import OUTBOX_ID
from stages.source_record import SourceRecord
from tests.stages.egress.test_delivery_lease import SlowTarget, pg
from tests.stages.egress.test_delivery_lease import record as thing_record

HOOK = "/rest/1/fencetest/"
BASE = "http://portal.test"
LEASE_S = 3.0
WRITES = ("catalog.product.add", "catalog.product.update")


def product_record(product_id: str, outbox_id: int, name: str) -> SourceRecord:
    value = json.dumps({"id": product_id, "name": name, "code": "c1"}).encode()
    headers = [
        (OUTBOX_ID, str(outbox_id).encode()),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"ru.mastermobile.product.upsert.v1"),
    ]
    return SourceRecord(
        topic="egress.bitrix24.product",
        partition=0,
        offset=outbox_id,
        key=product_id.encode(),
        value=value,
        headers=headers,
    )


def client_for(app) -> FencedBitrix24Client:
    # As build_egress makes it: packed into `batch` calls, fenced, timeout below the lease.
    return FencedBitrix24Client(
        Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000, timeout_s=10.0),
        transport=httpx.ASGITransport(app=app),
        pack=True,
    )


def worker(settings, engine, client, producer, **kwargs) -> EntityEgress:
    targets = Targets(settings=settings, bitrix24=client, onec=None, producer=producer)
    return EntityEgress(
        engine,
        ProductAction(targets),
        producer,
        RetryPolicy.from_settings(settings.retry),
        "dlq.egress.bitrix24.product",
        delivery_lease_s=LEASE_S,
        **kwargs,
    )


async def renewing(egress: EntityEgress) -> None:
    """What the worker's timer does: renew every third of the lease, failures logged."""
    while True:
        await asyncio.sleep(LEASE_S / 3)
        try:
            await egress.renew_leases()
        except Exception:  # noqa: BLE001, S110 — as the timer: the next tick tries again
            pass


async def writes(admin: httpx.AsyncClient) -> list[tuple[str, str]]:
    calls = (await admin.get("/_emulator/calls")).json()
    out = []
    for call in calls:
        if call["method"] == "batch":
            continue  # its commands are logged one by one
        if call["method"] in WRITES:
            out.append((call["method"], call["params"]["fields"]["name"]))
    return out


async def lease_holder(engine, product_id: str):
    async with engine.connect() as conn:
        return await conn.scalar(
            text("SELECT holder FROM egress_lease WHERE entity_id = :id"), {"id": product_id}
        )


async def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def run_takeover(settings, db_url, *, stall_a_pool: bool):
    """A starts change 1 and stalls (slow lookup answer; renewals stalled or absent); B
    comes with changes 1 and 2 (a rebalance replay). Returns A's and B's outcomes, the
    writes the emulator executed and its products."""
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)
    product = str(uuid.uuid4())

    async def main():
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        # A's only connection, and a pool timeout well below the lease (as lease_engine).
        engine_a = create_async_engine(db_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
        engine_b = async_engine(settings)
        client_a, client_b = client_for(app), client_for(app)
        producer = AckedProducer(settings.kafka, client_id="fence-test")
        a = worker(settings, engine_a, client_a, producer)
        b = worker(settings, engine_b, client_b, producer)
        timers = [asyncio.create_task(renewing(b))]
        held = None
        try:
            # A's lookup executes at once, but its answer is held past A's lease.
            await admin.post(
                "/_emulator/faults",
                json={
                    "method": "catalog.product.list",
                    "status": 200,
                    "delay_s": 3 * LEASE_S,
                    "xml_id": product,
                },
            )
            first = asyncio.create_task(a.deliver(product_record(product, 1, "v1")))
            await wait_for(lambda: lease_holder(engine_b, product))
            if stall_a_pool:
                # A's renewals stall on its pool (another user holds its only connection).
                held = await engine_a.connect()
                timers.append(asyncio.create_task(renewing(a)))
            await asyncio.sleep(0.3)
            second = await b.deliver_all(
                [product_record(product, 1, "v1"), product_record(product, 2, "v2")]
            )
            if held is not None:
                await held.close()
                held = None
            one = await asyncio.wait_for(first, 4 * LEASE_S)
            await asyncio.sleep(LEASE_S)  # a late write of A would be in the log by now
            products = [
                p
                for p in (await admin.get("/_emulator/products")).json()
                if p.get("xmlId") == product
            ]
            return one, second, await writes(admin), products
        finally:
            for timer in timers:
                timer.cancel()
            if held is not None:
                await held.close()
            producer.close()
            await client_a.aclose()
            await client_b.aclose()
            await admin.aclose()
            await engine_a.dispose()
            await engine_b.dispose()

    return asyncio.run(main())


@pytest.mark.parametrize("stall_a_pool", [True, False], ids=["renewals-stall", "no-renewals"])
def test_a_stalled_worker_never_writes_after_the_entitys_new_holder(settings, db_url, stall_a_pool):
    one, second, executed, products = run_takeover(settings, db_url, stall_a_pool=stall_a_pool)
    # B delivered both changes; A, fenced, started over and found change 1 delivered.
    assert second == ["delivered", "delivered"]
    assert one == "skipped"
    # Exactly one write per change, in order: the stale worker's write never landed.
    assert executed == [("catalog.product.add", "v1"), ("catalog.product.update", "v2")]
    assert [p["name"] for p in products] == ["v2"]
    with pg(settings) as conn:
        assert conn.execute(
            "SELECT last_outbox_id FROM egress_delivery WHERE entity_id = %s",
            (products[0]["xmlId"],),
        ).fetchone() == (2,)
        assert conn.execute(
            "SELECT count(*) FROM egress_lease WHERE entity_id = %s", (products[0]["xmlId"],)
        ).fetchone() == (0,)


def test_a_renewal_that_finds_the_lease_taken_cancels_the_action_in_flight(settings):
    target = SlowTarget(delay_s=30.0)
    thing = str(uuid.uuid4())

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="fence-test")
        try:
            egress = EntityEgress(
                engine,
                target,
                producer,
                RetryPolicy.from_settings(settings.retry),
                "dlq.egress.test.thing",
                delivery_lease_s=LEASE_S,
            )
            running = asyncio.create_task(egress.deliver(thing_record(thing, 1)))
            await wait_for(lambda: asyncio.sleep(0, target.active == 1))
            # Another worker took the entity (its lease ends in a second).
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE egress_lease SET holder = gen_random_uuid(), "
                        "expires_at = now() + interval '1 second' WHERE entity_id = :id"
                    ),
                    {"id": thing},
                )
            started = time.monotonic()
            renewed = await egress.renew_leases()
            await wait_for(lambda: asyncio.sleep(0, target.active == 0), timeout=5)
            cancelled_in = time.monotonic() - started
            target.delay_s = 0  # the redelivery, once the other holder's lease is over
            return renewed, cancelled_in, await asyncio.wait_for(running, 20)
        finally:
            producer.close()
            await engine.dispose()

    renewed, cancelled_in, outcome = asyncio.run(main())
    assert renewed == 0
    assert cancelled_in < 2.0  # the slow call (30 s) was abandoned at once
    # Not delivered by the other holder: the fenced worker delivered it after it, once.
    assert outcome == "delivered" and target.applied == [1]


def test_a_lease_released_during_a_renewal_is_not_a_takeover(settings):
    """A delivery that records itself (and deletes its lease row) while the renewal runs is
    finished, not fenced: only another holder on the row is a takeover (seen with one
    worker, where every such race logged a false "lease lost")."""
    target = SlowTarget(delay_s=30.0)
    thing = str(uuid.uuid4())

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="fence-test")
        try:
            egress = EntityEgress(
                engine,
                target,
                producer,
                RetryPolicy.from_settings(settings.retry),
                "dlq.egress.test.thing",
                delivery_lease_s=LEASE_S,
            )
            running = asyncio.create_task(egress.deliver(thing_record(thing, 1)))
            await wait_for(lambda: asyncio.sleep(0, target.active == 1))
            (fence,) = egress._holding.values()
            async with engine.begin() as conn:  # as if released by its own record
                await conn.execute(
                    text("DELETE FROM egress_lease WHERE entity_id = :id"), {"id": thing}
                )
            renewed = await egress.renew_leases()
            fenced = fence.fenced
            target.delay_s = 0
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            return renewed, fenced
        finally:
            producer.close()
            await engine.dispose()

    renewed, fenced = asyncio.run(main())
    assert renewed == 0 and fenced is None


def test_a_write_past_its_send_by_time_is_not_sent_by_the_packer(settings):
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        # A batch leaves 0.5 s after its first command: past this write's send-by time.
        client = FencedBitrix24Client(
            Bitrix24Settings(
                webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000, pack_linger_s=0.5
            ),
            transport=httpx.ASGITransport(app=app),
            pack=True,
        )
        loop = asyncio.get_running_loop()
        fence = Fence({"ttl": 3.0}, loop.time() + 1.3, write_timeout_s=1.0, margin_s=0.2)
        token = CURRENT.set(fence)
        try:
            with pytest.raises(LeaseLost):
                await client.call("catalog.product.add", {"fields": {"name": "late"}})
            CURRENT.reset(token)
            # A write whose delivery was cancelled (fenced by a renewal) before its batch
            # left is not sent either.
            gave_up = asyncio.create_task(
                client.call(
                    "catalog.product.add", {"fields": {"name": "cancelled", "iblockId": 14}}
                )
            )
            await asyncio.sleep(0.1)
            gave_up.cancel()
            await asyncio.sleep(0.8)
            # Outside a delivery nothing is fenced.
            await client.call("catalog.product.add", {"fields": {"name": "free", "iblockId": 14}})
            return [
                c["params"]["fields"]["name"]
                for c in (await admin.get("/_emulator/calls")).json()
                if c["method"] == "catalog.product.add"
            ]
        finally:
            await client.aclose()
            await admin.aclose()

    assert asyncio.run(main()) == ["free"]  # neither the late nor the abandoned write


def test_lease_statements_end_well_inside_the_lease(settings):
    engine = lease_engine(settings)
    try:
        assert engine.pool.timeout() <= settings.retry.delivery_lease_s / 5
    finally:
        asyncio.run(engine.dispose())
    assert RetrySettings().write_timeout_s == 7.5
    with pytest.raises(ValueError):
        RetrySettings(delivery_lease_s=15, delivery_write_timeout_s=10)
    with pytest.raises(ValueError):
        EntityEgress(
            None,
            SlowTarget(),
            None,
            RetryPolicy.from_settings(settings.retry),
            "dlq",
            delivery_lease_s=10,
            write_timeout_s=6,
        )


class GoneOnce:
    """An action whose first call fails for good while another worker takes the entity
    (``during``), and succeeds after."""

    target = "test"
    entity = "thing"

    def __init__(self) -> None:
        self.calls = 0
        self.during = None

    async def apply(self, change, xwalk) -> str | None:
        self.calls += 1
        if self.calls == 1:
            await self.during()
            raise ProductGone("the object is gone at the target")
        return None


class ProductGone(PermanentError):
    code = "gone"


def test_a_worker_that_lost_the_lease_does_not_dead_letter_the_change(settings):
    """The change's permanent failure came while another worker took the entity: the
    fenced worker starts over instead of dead-lettering what the holder now delivers (it
    used to dead-letter it, and the holder handled it too: one change, two outcomes)."""
    action = GoneOnce()
    thing = str(uuid.uuid4())

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="fence-test")

        async def take_over() -> None:  # another worker's lease, ending in a second
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE egress_lease SET holder = gen_random_uuid(), "
                        "expires_at = now() + interval '1 second' WHERE entity_id = :id"
                    ),
                    {"id": thing},
                )

        action.during = take_over
        try:
            egress = EntityEgress(
                engine,
                action,
                producer,
                RetryPolicy.from_settings(settings.retry),
                "dlq.egress.test.thing",
                delivery_lease_s=LEASE_S,
            )
            return await asyncio.wait_for(egress.deliver(thing_record(thing, 1)), 30)
        finally:
            producer.close()
            await engine.dispose()

    assert asyncio.run(main()) == "delivered"
    assert action.calls == 2
