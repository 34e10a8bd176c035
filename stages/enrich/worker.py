"""The Bitrix24 enrichment worker: raw.bitrix24.event -> raw.bitrix24.<entity>, plus the
cursor poller as a timer when ``settings.bitrix24.poll_enabled``.

Consumer group ``<streams.sink_group>-enrich-bitrix24``. Batches go through the stage
runner (stages/runner.py): acknowledged only after every record they produced (entities,
tombstones, DLQ records) was acknowledged by the broker and the published versions were
stored; an error the code does not handle stops the process (fail-stop), so the batch is
replayed by the partition's next owner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import faust

from connectors.bitrix24.events import ENTITIES
from mmstream.db.engine import async_engine
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from stages.app import create_app, source_topic
from stages.runner import Once, StageRunner
from stages.source_record import SourceRecord

if TYPE_CHECKING:
    from stages.enrich.bitrix24 import Enricher
    from stages.enrich.poller import CursorPoller

log = logging.getLogger(__name__)

EVENT_TOPIC = "raw.bitrix24.event"
#: The dead-letter topic the enrichment needs (to be declared in topics.yaml, co-partitioned
#: with the bitrix24 group).
DLQ_TOPIC = "dlq.enrich.bitrix24"


def group_id(settings: Settings) -> str:
    """The enrichment's consumer group."""
    return f"{settings.streams.sink_group}-enrich-bitrix24"


@dataclass(frozen=True)
class EnrichDeps:
    """What the enrichment worker runs on, built once (first batch or first poll tick)."""

    enricher: Enricher
    poller: CursorPoller


def build_enrich(settings: Settings, *, dlq_topic: str | None = None) -> faust.App:
    """The enrichment worker; ``dlq_topic`` is the physical DLQ name (default: the
    prefixed ``dlq.enrich.bitrix24``)."""
    from connectors.bitrix24.client import Bitrix24Client
    from connectors.metered import MeteredTransport
    from mmstream.retry import RetryPolicy
    from stages.enrich.bitrix24 import Enricher
    from stages.enrich.fetch import Fetcher
    from stages.enrich.poller import CursorPoller

    catalog = load_catalog(settings.topics_file)
    app = create_app(settings, group_id(settings))
    events = source_topic(app, settings, catalog, EVENT_TOPIC)
    dlq = dlq_topic or settings.topic(DLQ_TOPIC)
    topics = {entity: settings.topic(f"raw.bitrix24.{entity}") for entity in ENTITIES}
    bx = settings.bitrix24
    portal = urlsplit(bx.webhook_url.get_secret_value()).netloc

    async def build() -> EnrichDeps:
        require_topics(settings, [settings.topic(EVENT_TOPIC), *topics.values(), dlq])
        engine = async_engine(settings)
        # Replicas of this group share the portal budget (split by the group's member count).
        client = Bitrix24Client.for_worker(
            settings, group=group_id(settings), transport=MeteredTransport("bitrix24")
        )
        producer = AckedProducer(settings.kafka, client_id=f"{group_id(settings)}-out")
        fetcher = Fetcher(client, RetryPolicy.from_settings(settings.retry), bx.enrich_batch_max)
        return EnrichDeps(
            Enricher(engine, fetcher, producer, topics, dlq, origin=portal),
            CursorPoller(
                engine,
                client,
                producer,
                event_topic=settings.topic(EVENT_TOPIC),
                portal=portal,
                entities=bx.poll_entities,
                iblock_id=bx.product_iblock_id,
                max_pages=bx.poll_max_pages,
            ),
        )

    deps = Once(build)

    async def handle(records: list[SourceRecord]) -> None:
        await (await deps.get()).enricher.handle(records)

    # A few `batch` calls per take: at the portal's ~2 calls/s a take of streams.batch_max
    # events could keep the consumer from polling long enough to be dropped from its group.
    runner = StageRunner(
        "enrich.bitrix24",
        handle,
        take=min(settings.streams.batch_max, 4 * bx.enrich_batch_max),
        within_s=settings.streams.batch_within_s,
        prepare=deps.get,
    )

    @app.agent(events, name="enrich.bitrix24")
    async def enrich(stream):
        await runner.run(stream)

    if bx.poll_enabled:
        from stages.enrich.poller import budget_share

        idle, worst = budget_share(
            len(bx.poll_entities), bx.poll_max_pages, bx.poll_interval_s, bx.rate_per_s
        )
        log.info(
            "bitrix24 cursor poller on",
            extra={
                "entities": bx.poll_entities,
                "interval_s": bx.poll_interval_s,
                "budget_share_idle": round(idle, 3),
                "budget_share_backlog": round(worst, 3),
            },
        )
        if worst > 0.25:
            log.warning(
                "the bitrix24 cursor poller may take over a quarter of the portal's "
                "request budget: raise MM_BITRIX24__POLL_INTERVAL_S or lower "
                "MM_BITRIX24__POLL_MAX_PAGES",
                extra={"budget_share_backlog": round(worst, 3)},
            )

        @app.timer(interval=bx.poll_interval_s)
        async def poll() -> None:
            # Every worker ticks; the advisory lock lets one of them poll the portal.
            try:
                published = await (await deps.get()).poller.poll_once()
            except Exception as exc:  # noqa: BLE001 — the next tick resumes from the cursor
                log.warning(
                    "bitrix24 poll failed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]}
                )
                return
            if published is None:
                log.debug("bitrix24 poll skipped: another worker holds the portal's lock")

    return app


def run(settings: Settings, metrics_port: int | None = None) -> None:
    """Run the enrichment worker in the foreground until SIGINT/SIGTERM (for
    ``mmctl worker enrich-bitrix24``)."""
    from stages.worker import run as run_worker

    port = settings.streams.metrics_port if metrics_port is None else metrics_port
    run_worker(build_enrich(settings), settings, port)
