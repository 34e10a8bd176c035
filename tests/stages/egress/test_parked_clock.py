"""The delayed retry path runs on the database's clock (stages/egress/sequencer.py): a
worker whose clock is off by an hour neither starves a parked change nor retries it early,
and does not spend (or stretch) its time budget. Real PostgreSQL; the worker's clock is
skewed by replacing ``datetime`` in the egress modules."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import ClassVar

import pytest

import stages.egress.delivery as delivery_module
import stages.egress.sequencer as sequencer_module
from connectors.bitrix24.errors import TransportError
from mmstream.db.engine import async_engine
from mmstream.kafka.producer import AckedProducer
from mmstream.retry import RetryPolicy
from stages.egress.delivery import Change, Crosswalk, EntityEgress
from stages.egress.sequencer import Sequencer
from tests.stages.egress.test_delivery_lease import pg, record


def skew_worker_clock(monkeypatch, seconds: float) -> None:
    """The worker's wall clock runs ``seconds`` ahead (negative: behind) of the database's."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(sequencer_module, "datetime", Skewed)
    monkeypatch.setattr(delivery_module, "datetime", Skewed)


@pytest.mark.parametrize("skew_s", [3600.0, -3600.0], ids=["worker-ahead", "worker-behind"])
def test_a_parked_change_is_due_by_the_database_clock(settings, monkeypatch, skew_s):
    skew_worker_clock(monkeypatch, skew_s)
    thing = str(uuid.uuid4())

    async def main():
        engine = async_engine(settings)
        try:
            lot = Sequencer(engine, "test", lease_s=30.0)
            await lot.park(
                record(thing, 1),
                "thing",
                thing,
                attempts=1,
                error=TransportError(None, "ConnectError", "down"),
                retry_in_s=1.5,
            )
            early = await lot.claim_due(entity="thing")
            await asyncio.sleep(2.0)
            due = await lot.claim_due(entity="thing")
            return early, due
        finally:
            await engine.dispose()

    early, due = asyncio.run(main())
    assert early == []  # not retried before its time
    assert [p.entity_id for p in due] == [thing]  # nor starved once it is due
    with pg(settings) as conn:
        # The failure was dated by the database, not by the skewed worker.
        age = conn.execute(
            "SELECT extract(epoch FROM now() - last_failure) FROM egress_parked "
            "WHERE entity_id = %s",
            (thing,),
        ).fetchone()[0]
    assert 0 <= float(age) < 60


class Down:
    """A target that is down (transient errors)."""

    target: ClassVar[str] = "test"
    entity: ClassVar[str] = "thing"

    def __init__(self) -> None:
        self.calls = 0

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        self.calls += 1
        raise TransportError(None, "ConnectError", "target down")


@pytest.mark.parametrize("skew_s", [3600.0, -3600.0], ids=["worker-ahead", "worker-behind"])
def test_a_skewed_worker_neither_spends_nor_stretches_the_retry_budget(
    settings, monkeypatch, skew_s
):
    thing = str(uuid.uuid4())
    target = Down()

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="parked-clock-test")
        try:
            lot = Sequencer(engine, "test", lease_s=30.0)
            # Parked by a worker whose clock is right.
            await lot.park(
                record(thing, 1),
                "thing",
                thing,
                attempts=1,
                error=TransportError(None, "ConnectError", "down"),
                retry_in_s=0,
            )
            skew_worker_clock(monkeypatch, skew_s)
            egress = EntityEgress(
                engine,
                target,
                producer,
                RetryPolicy(max_attempts=8, base_delay_s=0.5, max_delay_s=1.0, budget_s=300.0),
                "dlq.egress.test.thing",
                lease_s=30.0,
            )
            started = time.monotonic()
            released = await asyncio.wait_for(egress.retry_parked(), 20)
            return released, time.monotonic() - started
        finally:
            producer.close()
            await engine.dispose()

    released, _ = asyncio.run(main())
    # Tried once and parked again (the budget is 300 s, an hour's skew is not spent time).
    assert target.calls == 1 and released == 0
    with pg(settings) as conn:
        attempts, wait = conn.execute(
            "SELECT attempts, extract(epoch FROM next_attempt_at - now()) FROM egress_parked "
            "WHERE entity_id = %s",
            (thing,),
        ).fetchone()
    assert attempts == 2
    assert -1.0 <= float(wait) <= 1.5  # due again within max_delay_s, by the database's clock
