"""The Bitrix24 egress worker and what every Faust worker shares (the outbox sweep, the
foreground runner). The sink (raw -> PostgreSQL + outbox -> norm/egress topics) is
:mod:`stages.sink.entity_worker`. Each is its own consumer group and process; scale by
running more.

Offsets: every agent reads through the stage runner (:mod:`stages.runner`), the one place
that decides when offsets are committed: a batch is acknowledged, in take order, only after
every effect of it is durable (database commit, outbox and DLQ records acknowledged by the
broker); an error the stage does not handle ends the process (fail-stop) so the batch is
replayed by whoever owns the partition next, instead of being acknowledged half-done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import faust

from mmstream import metrics
from mmstream.db.engine import async_engine
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from stages.app import create_app, source_topic
from stages.runner import Once, StageRunner
from stages.source_record import SourceRecord

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from stages.egress.actions import Targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EgressShared:
    """What every egress agent of a worker shares, built once: the target clients (one
    portal budget) and the database pools."""

    targets: Targets
    engine: AsyncEngine
    lease_engine: AsyncEngine


#: Egress records an agent takes at once (at most; fewer when the topic is quiet).
EGRESS_TAKE = 500
#: Takes an agent delivers at once (the next starts while the last one drains).
EGRESS_TAKES_IN_FLIGHT = 2


def build_egress(settings: Settings) -> faust.App:
    """The egress worker: one agent per egress topic (``stages/egress/actions.py``), all
    sharing one Bitrix24 client (one portal budget) and one 1С client."""
    from connectors.metered import MeteredTransport
    from connectors.onec.client import OneCClient
    from mmstream.retry import RetryPolicy
    from stages.egress.actions import ACTIONS, Targets, action_for, check_coverage
    from stages.egress.delivery import EntityEgress
    from stages.egress.fencing import FencedBitrix24Client, FencedTransport, lease_engine

    catalog = load_catalog(settings.topics_file)
    app = create_app(settings, settings.streams.egress_group)
    # An egress topic without an action would fill while nothing reaches the target: refuse
    # to start rather than look healthy (a test keeps the shipped file and ACTIONS in step).
    check_coverage(catalog)
    names = [n for n in catalog.topics if n in ACTIONS]
    # A write must end inside its entity's lease (stages/egress/fencing.py): the target
    # clients' timeouts are capped to the write timeout; their writes are fenced.
    write_s = settings.retry.write_timeout_s
    capped = settings.model_copy(
        update={
            "bitrix24": settings.bitrix24.model_copy(
                update={"timeout_s": min(settings.bitrix24.timeout_s, write_s)}
            ),
            "onec": settings.onec.model_copy(
                update={
                    "timeout_s": min(settings.onec.timeout_s, write_s),
                    "connect_timeout_s": min(settings.onec.connect_timeout_s, write_s),
                }
            ),
        }
    )

    async def build_shared() -> EgressShared:
        return EgressShared(
            targets=Targets(
                settings=settings,
                bitrix24=FencedBitrix24Client.for_worker(
                    capped,
                    group=settings.streams.egress_group,
                    transport=MeteredTransport("bitrix24"),
                    pack=True,
                ),
                onec=OneCClient(capped.onec, transport=FencedTransport(MeteredTransport("onec"))),
                producer=AckedProducer(
                    settings.kafka, client_id=f"{settings.streams.egress_group}-out"
                ),
            ),
            engine=async_engine(settings, pool_size=settings.streams.egress_db_pool),
            # Renewals and the checks before writes: their own pool, with a pool timeout
            # (and statement timeout) well below the lease.
            lease_engine=lease_engine(settings),
        )

    shared = Once(build_shared)
    # Deliveries in flight, over all agents of this worker: what fills `batch` calls.
    slots = asyncio.Semaphore(settings.streams.egress_concurrency)

    def egress_of(name: str) -> Once[EntityEgress]:
        async def build() -> EntityEgress:
            dlq = name.replace("egress.", "dlq.egress.", 1)
            require_topics(settings, [settings.topic(name), settings.topic(dlq)])
            common = await shared.get()
            return EntityEgress(
                common.engine,
                action_for(name, common.targets),
                common.targets.producer,
                RetryPolicy.from_settings(settings.retry),
                settings.topic(dlq),
                inline_attempts=settings.retry.inline_attempts,
                inline_budget_s=settings.retry.inline_budget_s,
                lease_s=settings.retry.parked_lease_s,
                delivery_lease_s=settings.retry.delivery_lease_s,
                write_timeout_s=write_s,
                lease_engine=common.lease_engine,
            )

        return Once(build)

    egresses = {name: egress_of(name) for name in names}

    def built() -> list[EntityEgress]:
        return [e for once in egresses.values() if (e := once.peek()) is not None]

    def add_agent(name: str) -> None:
        egress = egresses[name]

        async def handle(records: list[SourceRecord]) -> None:
            await (await egress.get()).deliver_all(records, slots=slots)

        # One entity's changes go one after the other in partition order; different
        # entities' changes go at once, so their calls share `batch` calls. Takes overlap:
        # while one drains (its last deliveries cannot fill a batch call), the next one
        # starts; the runner acknowledges them in take order.
        runner = StageRunner(
            name,
            handle,
            take=EGRESS_TAKE,
            within_s=settings.streams.batch_within_s,
            in_flight=EGRESS_TAKES_IN_FLIGHT,
            prepare=egress.get,
        )

        async def deliver(stream):
            await runner.run(stream)

        deliver.__name__ = deliver.__qualname__ = name.replace(".", "_")
        app.agent(source_topic(app, settings, catalog, name), name=name)(deliver)

    for name in names:
        add_agent(name)

    @app.timer(interval=settings.retry.delivery_lease_s / 3)
    async def renew_leases() -> None:
        # A delivery may outlast its lease (a slow target, long backoff): renewing keeps
        # other workers out while this one lives; a killed worker stops renewing. All at
        # once: each is bounded by a fifth of the lease, one after the other would not be.
        async def renew(egress: EntityEgress) -> None:
            try:
                await egress.renew_leases()
            except Exception:  # noqa: BLE001 — the next tick renews; a lease that could not
                # be renewed in time was fenced by renew_leases (no write of its delivery
                # lands after another worker took the entity)
                log.warning("egress lease renewal failed", exc_info=True)

        await asyncio.gather(*(renew(egress) for egress in built()))

    @app.timer(interval=settings.retry.parked_poll_s)
    async def retry_parked() -> None:
        # The delayed path: parked changes are durable in PostgreSQL, so any worker of the
        # group may retry them; a claim is a lease, so a dead worker's claims expire.
        for egress in built():
            try:
                async with fail_stop_soft(f"{egress.name} retry"):
                    # The heads of a pass side by side, within the deliveries in flight.
                    while await egress.retry_parked(slots=slots):
                        pass  # a released head lets the next change of its entity go at once
            except Exception:  # noqa: BLE001 — the next tick retries; nothing was acknowledged
                log.warning("delayed retry pass failed", exc_info=True)

    if settings.flows.cash_sla_watch_interval_s > 0:
        from stages.egress.cash_sla import CashSlaWatch

        async def build_watch() -> CashSlaWatch:
            common = await shared.get()
            return CashSlaWatch(common.engine, common.targets.producer, settings)

        watch = Once(build_watch)

        @app.timer(interval=settings.flows.cash_sla_watch_interval_s)
        async def watch_cash_sla() -> None:
            # Cash documents still unposted past their SLA (stages/egress/cash_sla.py): one
            # replica scans per tick (advisory lock); what it raised is in PostgreSQL.
            async with fail_stop_soft("cash SLA watch"):
                await (await watch.get()).tick()

    return app


@asynccontextmanager
async def fail_stop_soft(what: str) -> AsyncIterator[None]:
    """Log a timer's failure with its name; the timer runs again on its next tick."""
    try:
        yield
    except Exception:
        log.warning("%s failed; the next tick retries", what, exc_info=True)


async def sweep_owned_outboxes(
    app: faust.App, relay, topics: set[str], *, min_age_s: float
) -> None:
    """Safety net run by a timer: publish outbox entries a crash left behind (pending for at
    least ``min_age_s``) on the partitions of ``topics`` this worker owns now, then gauge
    what is still pending. The sink publishes its own batches' entries right after commit."""
    if relay is None:  # the first batch has not built the dependencies yet
        return
    owned = [(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in topics]
    try:
        await relay.sweep(owned, min_age_s=min_age_s)
    except Exception:  # noqa: BLE001 — the next sweep or batch retries
        log.warning("outbox sweep failed", exc_info=True)
    try:  # after the flush: what is still pending is the backlog (mm_outbox_backlog)
        await relay.measure_backlog(owned)
    except Exception:  # noqa: BLE001 — a gauge can wait for the next sweep
        log.warning("outbox backlog not measured", exc_info=True)


def _async(fn):
    async def run():
        return fn()

    return run


def run(app: faust.App, settings: Settings, metrics_port: int) -> None:
    """Run a worker in the foreground until SIGINT/SIGTERM."""
    import uvloop
    from faust.worker import Worker

    uvloop.install()
    metrics.serve(metrics_port, settings.streams.metrics_host)
    metrics.UP.labels(app.conf.id).set(1)
    if metrics_port:  # lag is a metric: only where someone can scrape it
        from mmstream.kafka.lag_exporter import LagExporter

        LagExporter.for_app(app, settings, settings.streams.lag_interval_s).start()
    worker = Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
        console_port=0,
    )
    worker.spinner = None  # it writes terminal escapes into the JSON log stream
    worker.execute_from_commandline()
