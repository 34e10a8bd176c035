"""The entity sink worker: every raw topic that has a normalizer -> canonical tables ->
norm.<entity> (Avro) and the entity's egress topics. Its own consumer group
(``MM_STREAMS__ENTITY_SINK_GROUP``). Products are an entity like the others: there is
no second sink."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import faust

from mmstream.avro_serde import AvroEncoder
from mmstream.db.engine import async_engine
from mmstream.errors import ConfigurationError
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.models.catalog import entity_models
from mmstream.retry import retry_forever
from mmstream.settings import Settings
from mmstream.topics import TopicCatalog, load_catalog
from stages.app import create_app
from stages.normalize.registry import Context, normalizers
from stages.outbox.relay import OutboxRelay, Route
from stages.runner import Once, StageRunner
from stages.sink.entity_sink import EntitySink
from stages.source_record import SourceRecord
from stages.worker import _async, sweep_owned_outboxes

log = logging.getLogger(__name__)
DLQ = "dlq.normalize"
RELAY_DLQ = "dlq.relay"
#: The sweep publishes entries pending for this many sweep intervals: a crash's leftovers.
SWEEP_MIN_AGE_INTERVALS = 5
#: Takes handled side by side (one storing, one publishing).
SINK_TAKES_IN_FLIGHT = 2


def raw_topics(catalog: TopicCatalog) -> list[str]:
    """Declared raw topics that have a normalizer (logical names, sorted)."""
    return sorted(t for t in normalizers() if t in catalog.topics)


def routes(settings: Settings, catalog: TopicCatalog) -> dict[str, Route]:
    """Entity -> where its changes go; registers each norm schema (blocking)."""
    out = {}
    for entity, model in sorted(entity_models().items()):
        norm = f"norm.{entity}"
        spec = catalog[norm]
        encoder = AvroEncoder(
            settings.schemas_dir / (spec.schema or f"{entity}.avsc"),
            settings.registry_client_config(),
            f"{settings.topic(norm)}-value",
        )
        egress = tuple(
            settings.topic(t.name)
            for t in catalog.topics.values()
            if t.role == "egress" and t.entity == entity
        )
        out[entity] = Route(
            settings.topic(norm),
            encoder,
            egress,
            model=model,
            tombstones=spec.configs.get("cleanup.policy", "").startswith("compact"),
        )
    return out


@dataclass(frozen=True)
class EntitySinkDeps:
    """What the entity sink worker runs on, built once (on the first batch or sweep)."""

    sink: EntitySink
    relay: OutboxRelay

    @classmethod
    async def build(
        cls, settings: Settings, catalog: TopicCatalog, physical: dict[str, str]
    ) -> EntitySinkDeps:
        """``physical`` maps the physical raw topic name to its logical name."""
        if not settings.schema_registry_url:
            raise ConfigurationError(
                "SCHEMA_REGISTRY_URL is not set: the sink needs a schema "
                "registry to publish Avro to norm topics"
            )
        norm = [f"norm.{e}" for e in entity_models()]
        require_topics(
            settings, [settings.topic(n) for n in [*physical.values(), *norm, DLQ, RELAY_DLQ]]
        )
        table = await retry_forever(
            _async(lambda: routes(settings, catalog)),
            stage="sink",
            what="schema registration",
            entity="entity",
        )
        engine = async_engine(settings)
        producer = AckedProducer(
            settings.kafka, client_id=f"{settings.streams.entity_sink_group}-out"
        )
        relay = OutboxRelay(engine, producer, table, dlq_topic=settings.topic(RELAY_DLQ))
        found = normalizers()
        ctx = Context(
            onec_tz=ZoneInfo(settings.onec.timezone),
            portal_tz=ZoneInfo(settings.bitrix24.portal_timezone),
            couriers=settings.bitrix24.couriers,
            delivery_needs_address=settings.flows.delivery_needs_address,
        )
        sink = EntitySink(
            engine,
            producer,
            relay,
            settings.topic(DLQ),
            {p: found[n] for p, n in physical.items()},
            ctx,
        )
        return cls(sink, relay)


def build_entity_sink(settings: Settings) -> faust.App:
    """The Faust app of the entity sink."""
    catalog = load_catalog(settings.topics_file)
    app = create_app(settings, settings.streams.entity_sink_group)
    logical = raw_topics(catalog)
    physical = {settings.topic(n): n for n in logical}
    # One agent over every raw topic: a batch may mix entities, merged in one transaction.
    topic = app.topic(*physical, value_serializer="raw", key_serializer="raw", allow_empty=True)
    deps = Once(lambda: EntitySinkDeps.build(settings, catalog, physical))

    async def handle(records: list[SourceRecord]) -> None:
        await (await deps.get()).sink.handle(records)

    runner = StageRunner(
        "sink.entities",
        handle,
        take=settings.streams.batch_max,
        within_s=settings.streams.batch_within_s,
        # Two takes side by side: the next batch is normalized and merged while this one's
        # changes go to the broker (EntitySink.handle keeps both phases in take order).
        in_flight=SINK_TAKES_IN_FLIGHT,
        prepare=deps.get,
    )

    @app.agent(topic, name="sink.entities")
    async def sink_entities(stream):
        await runner.run(stream)

    @app.timer(interval=settings.streams.outbox_sweep_interval_s)
    async def sweep_outbox() -> None:
        built = deps.peek()
        # Entries younger than a few sweeps are a live batch's, published by the sink itself.
        await sweep_owned_outboxes(
            app,
            built.relay if built else None,
            set(physical),
            min_age_s=SWEEP_MIN_AGE_INTERVALS * settings.streams.outbox_sweep_interval_s,
        )

    return app
