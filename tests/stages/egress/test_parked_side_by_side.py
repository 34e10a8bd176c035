"""The delayed retry path retries the due heads of different entities side by side
(stages/egress/delivery.py ``retry_parked``): one after the other, a backlog of parked heads
drained at a few per second (the chaos suite's settles waited on it). Real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

from connectors.bitrix24.errors import TransportError
from mmstream.db.engine import async_engine
from mmstream.kafka.producer import AckedProducer
from stages.egress.delivery import Change, Crosswalk
from stages.egress.sequencer import Sequencer
from tests.stages.egress.test_delivery_lease import egress, pg, record

HEADS = 3


class Together:
    """A target that answers only once ``HEADS`` calls are in it at the same time."""

    target: ClassVar[str] = "test"
    entity: ClassVar[str] = "thing"

    def __init__(self) -> None:
        self.barrier = asyncio.Barrier(HEADS)
        self.applied: list[str] = []

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        await self.barrier.wait()
        self.applied.append(change.entity_id)
        return "ext"


def test_due_heads_of_different_entities_are_retried_side_by_side(settings):
    things = [str(uuid.uuid4()) for _ in range(HEADS)]

    async def main():
        target = Together()
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="parked-side-by-side-test")
        try:
            lot = Sequencer(engine, "test", lease_s=30.0)
            for n, thing in enumerate(things, 1):
                await lot.park(
                    record(thing, n),
                    "thing",
                    thing,
                    attempts=1,
                    error=TransportError(None, "ConnectError", "down"),
                    retry_in_s=0,
                )
            # One head at a time, the first call would wait for the others forever.
            released = await asyncio.wait_for(
                egress(settings, engine, target, producer).retry_parked(), 30
            )
            return released, target.applied
        finally:
            producer.close()
            await engine.dispose()

    released, applied = asyncio.run(main())
    assert released == HEADS
    assert sorted(applied) == sorted(things)
    with pg(settings) as conn:
        left = conn.execute(
            "SELECT count(*) FROM egress_parked WHERE entity_id = ANY(%s)", (things,)
        ).fetchone()
    assert left == (0,)
