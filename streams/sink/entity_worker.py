"""The entity sink worker: every raw topic that has a normalizer -> canonical tables ->
norm.<entity> (Avro) and the entity's egress topics. Its own consumer group
(``MM_STREAMS__ENTITY_SINK_GROUP``). Products are an entity like the others: there is
no second sink."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

import faust

from mmstream import metrics
from mmstream.avro_serde import AvroEncoder
from mmstream.db.engine import async_engine
from mmstream.errors import ConfigurationError
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.models.catalog import entity_models
from mmstream.settings import Settings
from mmstream.topics import TopicCatalog, load_catalog
from streams.app import create_app
from streams.backoff import retry_transient
from streams.normalize.registry import Context, normalizers
from streams.outbox.relay import OutboxRelay, Route
from streams.records import SourceRecord
from streams.sink.entity_sink import EntitySink
from streams.worker import _async, ack_all, fail_stop, sweep_owned_outboxes

log = logging.getLogger(__name__)
DLQ = "dlq.normalize"
RELAY_DLQ = "dlq.relay"


def raw_topics(catalog: TopicCatalog) -> list[str]:
    """Declared raw topics that have a normalizer (logical names, sorted)."""
    return sorted(t for t in normalizers() if t in catalog.topics)


def routes(settings: Settings, catalog: TopicCatalog) -> dict[str, Route]:
    """Entity -> where its changes go; registers each norm schema (blocking)."""
    out = {}
    for entity, model in sorted(entity_models().items()):
        norm = f"norm.{entity}"
        spec = catalog[norm]
        encoder = AvroEncoder(settings.schemas_dir / (spec.schema or f"{entity}.avsc"),
                              settings.schema_registry_url or "", f"{settings.topic(norm)}-value")
        egress = tuple(settings.topic(t.name) for t in catalog.topics.values()
                       if t.role == "egress" and t.entity == entity)
        out[entity] = Route(settings.topic(norm), encoder, egress, model=model,
                            tombstones=spec.configs.get("cleanup.policy", "").startswith("compact"))
    return out


def build_entity_sink(settings: Settings) -> faust.App:
    """The Faust app of the entity sink."""
    catalog = load_catalog(settings.topics_file)
    app = create_app(settings, settings.streams.entity_sink_group)
    logical = raw_topics(catalog)
    physical = {settings.topic(n): n for n in logical}
    # One agent over every raw topic: a batch may mix entities, merged in one transaction.
    topic = app.topic(*physical, value_serializer="raw", key_serializer="raw", allow_empty=True)
    deps: dict[str, object] = {}

    async def ensure_deps() -> EntitySink:
        if "sink" not in deps:
            if not settings.schema_registry_url:
                raise ConfigurationError("SCHEMA_REGISTRY_URL is not set: the sink needs a schema "
                                         "registry to publish Avro to norm topics")
            norm = [f"norm.{e}" for e in entity_models()]
            require_topics(settings, [settings.topic(n) for n in [*logical, *norm, DLQ, RELAY_DLQ]])
            table = await retry_transient(_async(lambda: routes(settings, catalog)),
                                          what="schema registration", entity="entity")
            engine = async_engine(settings)
            producer = AckedProducer(settings.kafka,
                                     client_id=f"{settings.streams.entity_sink_group}-out")
            relay = OutboxRelay(engine, producer, table, dlq_topic=settings.topic(RELAY_DLQ))
            found = normalizers()
            ctx = Context(onec_tz=ZoneInfo(settings.onec.timezone),
                          portal_tz=ZoneInfo(settings.bitrix24.portal_timezone),
                          couriers=settings.bitrix24.couriers,
                          delivery_needs_address=settings.flows.delivery_needs_address)
            deps["relay"] = relay
            deps["sink"] = EntitySink(engine, producer, relay, settings.topic(DLQ),
                                      {p: found[n] for p, n in physical.items()}, ctx)
        return deps["sink"]  # type: ignore[return-value]

    @app.agent(topic, name="sink.entities")
    async def sink_entities(stream):
        async with fail_stop("sink.entities"):
            sink = await ensure_deps()
            async for events in stream.noack_take(settings.streams.batch_max,
                                                  within=settings.streams.batch_within_s):
                with metrics.observe_batch("sink.entities", len(events)):
                    await sink.handle([SourceRecord.from_event(e) for e in events])
                    await ack_all(stream, events)

    @app.timer(interval=settings.streams.outbox_sweep_interval_s)
    async def sweep_outbox() -> None:
        await sweep_owned_outboxes(app, deps.get("relay"), set(physical))

    return app
