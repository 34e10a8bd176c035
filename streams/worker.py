"""The two Faust workers: the sink (raw -> PostgreSQL + outbox -> norm/egress topics) and
the Bitrix24 egress. Each is its own consumer group and process; scale by running more.

Offsets: agents take batches with ``noack_take`` and acknowledge events only after every
effect of the batch is durable (database commit, outbox and DLQ records acknowledged by
the broker). Faust commits acknowledged offsets only. If processing fails in a way the code
does not handle, the process exits (fail-stop) so the batch is replayed by whoever owns the
partition next, instead of being acknowledged half-done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import faust

from mmstream import metrics
from mmstream.avro_serde import AvroEncoder
from mmstream.db.engine import async_engine
from mmstream.errors import ConfigurationError
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from streams.app import create_app, source_topic
from streams.backoff import retry_transient
from streams.records import SourceRecord

log = logging.getLogger(__name__)
EXIT_FATAL = 70


def fatal(what: str) -> None:
    """Log the current exception and end the process at once (fail-stop, no ack)."""
    log.critical("unhandled error in %s: exiting so the batch is replayed", what, exc_info=True)
    logging.shutdown()
    os._exit(EXIT_FATAL)


def build_sink(settings: Settings) -> faust.App:
    """The sink worker for products."""
    from streams.outbox.relay import OutboxRelay, Route
    from streams.sink.processor import ProductSink

    catalog = load_catalog(settings.topics_file)
    app = create_app(settings, settings.streams.sink_group)
    raw = source_topic(app, settings, catalog, "raw.onec.product")
    deps: dict[str, object] = {}

    async def ensure_deps() -> ProductSink:
        if "sink" not in deps:
            if not settings.schema_registry_url:
                raise ConfigurationError("SCHEMA_REGISTRY_URL is not set: the sink needs a schema "
                                         "registry to publish Avro to norm topics")
            names = [settings.topic(n) for n in ("raw.onec.product", "norm.product",
                                                 "egress.bitrix24.product", "dlq.sink.product")]
            require_topics(settings, names)
            schema = catalog["norm.product"].schema
            encoder = await retry_transient(
                _async(lambda: AvroEncoder(settings.schemas_dir / schema, settings.schema_registry_url,
                                           f"{settings.topic('norm.product')}-value")),
                what="schema registration", entity="product")
            engine = async_engine(settings)
            producer = AckedProducer(settings.kafka, client_id=f"{settings.streams.sink_group}-out")
            relay = OutboxRelay(engine, producer, {"product": Route(
                settings.topic("norm.product"), encoder, (settings.topic("egress.bitrix24.product"),))})
            deps["relay"] = relay
            deps["sink"] = ProductSink(engine, producer, relay, settings.topic("dlq.sink.product"))
        return deps["sink"]  # type: ignore[return-value]

    @app.agent(raw, name="sink.product")
    async def sink_product(stream):
        async with fail_stop("sink.product"):
            sink = await ensure_deps()
            async for events in stream.noack_take(settings.streams.batch_max,
                                                  within=settings.streams.batch_within_s):
                await sink.handle([SourceRecord.from_event(e) for e in events])
                await ack_all(stream, events)

    @app.timer(interval=settings.streams.outbox_sweep_interval_s)
    async def sweep_outbox() -> None:
        # Safety net: publish entries a crash left behind on partitions we own now.
        relay = deps.get("relay")
        if relay is None:
            return
        try:
            for tp in app.consumer.assignment():
                if tp.topic == raw.get_topic_name():
                    await relay.flush(tp.topic, tp.partition, wait=False)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 — the next sweep or batch retries
            log.warning("outbox sweep failed", exc_info=True)

    return app


def build_egress(settings: Settings) -> faust.App:
    """The Bitrix24 egress worker for products."""
    from connectors.bitrix24.client import Bitrix24Client
    from connectors.metered import MeteredTransport
    from streams.egress.bitrix24_product import ProductEgress
    from streams.egress.retry import RetryPolicy

    catalog = load_catalog(settings.topics_file)
    app = create_app(settings, settings.streams.egress_group)
    topic = source_topic(app, settings, catalog, "egress.bitrix24.product")

    @app.agent(topic, name="egress.bitrix24.product")
    async def egress_product(stream):
        async with fail_stop("egress.bitrix24.product"):
            require_topics(settings, [settings.topic("egress.bitrix24.product"),
                                      settings.topic("dlq.egress.bitrix24.product")])
            egress = ProductEgress(
                async_engine(settings),
                Bitrix24Client(settings.bitrix24, transport=MeteredTransport("bitrix24")),
                AckedProducer(settings.kafka, client_id=f"{settings.streams.egress_group}-out"),
                RetryPolicy.from_settings(settings.retry),
                settings.topic("dlq.egress.bitrix24.product"),
            )
            # Events are delivered one by one in partition order: per-product order holds.
            async for events in stream.noack_take(100, within=settings.streams.batch_within_s):
                for event in events:
                    await egress.deliver(SourceRecord.from_event(event))
                await ack_all(stream, events)

    return app


@asynccontextmanager
async def fail_stop(what: str) -> AsyncIterator[None]:
    """Run an agent's body: an error it does not handle ends the process (see :func:`fatal`)
    instead of acknowledging a half-done batch; shutdown signals pass through."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 — everything but shutdown is fatal here
        if is_shutdown(exc):
            raise
        fatal(what)


async def ack_all(stream, events) -> None:
    """Acknowledge a processed batch (Faust commits acknowledged offsets only)."""
    for event in events:
        await stream.ack(event)


def is_shutdown(exc: BaseException) -> bool:
    """True for the exceptions that mean "stop", not "failed"."""
    import asyncio

    return isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt, SystemExit))


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
    worker = Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False,
                    override_logging=False, console_port=0)
    worker.spinner = None  # it writes terminal escapes into the JSON log stream
    worker.execute_from_commandline()
