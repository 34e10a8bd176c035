"""Fixtures for the DLQ tooling tests: the test's topics created, and a way to park records."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mmstream.dlq.format import Failure, dead_letter
from mmstream.errors import InvalidRecord
from mmstream.kafka.admin import apply
from mmstream.kafka.producer import AckedProducer, Delivered, OutRecord
from mmstream.topics import load_catalog
from stages.source_record import SourceRecord

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


def parked(
    settings,
    *,
    source: str = "raw.onec.product",
    dlq: str = "dlq.normalize",
    partition: int = 0,
    offset: int = 0,
    key: str | None = None,
    value: bytes | None = None,
    error: BaseException | None = None,
    at: datetime = T0,
    stage: str = "sink",
    headers: list[tuple[str, bytes]] | None = None,
) -> OutRecord:
    """A DLQ record built by the real dead_letter() of a record at source/partition/offset."""
    key = key or str(uuid.uuid4())
    value = value if value is not None else json.dumps({"Ref_Key": key, "DataVersion": ""}).encode()
    rec = SourceRecord(
        settings.topic(source),
        partition,
        offset,
        key.encode(),
        value,
        headers
        if headers is not None
        else [("ce_id", key.encode()), ("content-type", b"application/json")],
    )
    failure = Failure(
        error or InvalidRecord("DataVersion: too short"), 1, at - timedelta(seconds=1), at
    )
    return dead_letter(rec, failure, stage=stage, topic=settings.topic(dlq))


def produce(settings, records: list[OutRecord]) -> list[Delivered]:
    """Publish records with acks=all; returns where they landed."""

    async def run() -> list[Delivered]:
        producer = AckedProducer(settings.kafka, client_id="test-dlq")
        try:
            return await producer.send_many(records)
        finally:
            producer.close()

    return asyncio.run(run())


@pytest.fixture
def topics(settings):
    """The declared topics of this test (random prefix), created on the broker."""
    apply(settings, load_catalog(settings.topics_file))
    return settings
