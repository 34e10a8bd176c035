"""The sink built as its worker builds it (stages/sink/entity_worker.py), on the test's broker, PostgreSQL and schema registry, driven with raw
records directly (no Faust)."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.dlq.entry import DlqEntry
from mmstream.kafka.admin import apply
from mmstream.kafka.producer import AckedProducer
from mmstream.topics import load_catalog
from stages.normalize.registry import Context, normalizers
from stages.outbox.relay import OutboxRelay
from stages.sink.entity_sink import EntitySink
from stages.sink.entity_worker import DLQ, RELAY_DLQ, raw_topics, routes
from stages.source_record import SourceRecord
from tests.support.topics import count_records

V1 = "AAAAAQAAAAA="


def sink_settings(settings, registry_url):
    s = settings.model_copy(update={"schema_registry_url": registry_url})
    apply(s, load_catalog(s.topics_file))
    return s


def sql(settings, query: str, *params) -> list[tuple]:
    url = settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


class Sinks:
    """The entity sink (every entity, products included) with its engine and producer."""

    def __init__(self, settings, normalizers_by_topic: dict | None = None) -> None:
        """``normalizers_by_topic`` (logical raw topic -> normalizer) replaces the shipped
        ones, e.g. with one that lets values through unchecked."""
        self.settings = settings
        catalog = load_catalog(settings.topics_file)
        self.engine = create_async_engine(settings.require_database_url())
        self.producer = AckedProducer(settings.kafka, client_id="sink-test")
        self.relay = OutboxRelay(
            self.engine,
            self.producer,
            routes(settings, catalog),
            dlq_topic=settings.topic(RELAY_DLQ),
        )
        found = normalizers_by_topic or normalizers()
        self.entities = EntitySink(
            self.engine,
            self.producer,
            self.relay,
            settings.topic(DLQ),
            {settings.topic(n): found[n] for n in raw_topics(catalog) if n in found},
            Context(),
        )
        # Products are an entity like the others: the one sink takes raw.onec.product too.
        self.products = self.entities
        self.offsets: dict[tuple[str, int], int] = {}

    def record(
        self, topic: str, value: dict | bytes | None, key: str, partition: int = 0
    ) -> SourceRecord:
        """A raw record as the bridge writes it, at the next offset of its partition."""
        physical = self.settings.topic(topic)
        offset = self.offsets.get((physical, partition), 0)
        self.offsets[(physical, partition)] = offset + 1
        body = (
            value
            if isinstance(value, bytes) or value is None
            else json.dumps(value, ensure_ascii=False).encode()
        )
        return SourceRecord(
            physical, partition, offset, key.encode(), body, [("ce_id", str(uuid.uuid4()).encode())]
        )

    async def close(self) -> None:
        self.producer.close()
        await self.engine.dispose()


def run(settings, scenario):
    async def main():
        sinks = Sinks(settings)
        try:
            return await scenario(sinks)
        finally:
            await sinks.close()

    return asyncio.run(main())


def dlq(settings, name: str, expect: int = 0, quiet_s: float = 0) -> list[DlqEntry]:
    """The DLQ's records. Exact by default (read to the end offsets, no quiet window):
    called after ``run()`` returned, every record the sink wrote is acknowledged already."""
    msgs = count_records(settings, name, expect_at_least=expect, quiet_s=quiet_s)
    return [
        DlqEntry.build(
            m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]
        )
        for m in msgs
    ]


def warehouse(ref: str | None = None, name: str = "Основной склад", version: str = V1) -> dict:
    """A УТ 11 Catalog_Склады item."""
    return {
        "Ref_Key": ref or str(uuid.uuid4()),
        "DataVersion": version,
        "DeletionMark": False,
        "Parent_Key": "00000000-0000-0000-0000-000000000000",
        "IsFolder": False,
        "Code": "000000001",
        "Description": name,
        "ТипСклада": "СкладскоеПомещение",
        "Комментарий": "",
    }
