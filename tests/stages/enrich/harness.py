"""The enrichment's parts built as stages.enrich.worker builds them, in-process, against
an in-process Bitrix24 emulator and the real broker and PostgreSQL."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import psycopg
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.events import ENTITIES, EventRef
from devstack.emulators.bitrix24 import create_app
from mmstream.kafka.producer import AckedProducer
from mmstream.retry import RetryPolicy
from stages.enrich.bitrix24 import Enricher
from stages.enrich.fetch import Fetcher
from stages.enrich.poller import CursorPoller
from stages.source_record import SourceRecord
from tests.support.bitrix24 import DLQ_TOPIC, DOMAIN, MEMBER_ID, with_tokens


class Harness:
    """The enrichment's parts built as stages.enrich.worker builds them, inside one event
    loop, against an in-process Bitrix24 emulator (httpx.ASGITransport) and the real broker
    and PostgreSQL."""

    HOOK = "/rest/1/inprocess/"

    def __init__(self, settings, **bitrix24) -> None:
        self.settings = with_tokens(
            settings,
            webhook_url=SecretStr(f"http://portal.test{self.HOOK}"),
            rate_per_s=1e6,
            burst=1000,
            **bitrix24,
        )
        self.emulator = create_app(webhook_path=self.HOOK, rate_per_s=1000.0, burst=1000)
        self.portal = self.emulator.state.emulator

    def client(self, transport=None) -> Bitrix24Client:
        return Bitrix24Client(
            self.settings.bitrix24, transport=transport or httpx.ASGITransport(app=self.emulator)
        )

    def policy(self, **overrides) -> RetryPolicy:
        return RetryPolicy(
            **{**RetryPolicy.from_settings(self.settings.retry).__dict__, **overrides}
        )

    async def run(self, scenario, *, transport=None, **policy):
        engine = create_async_engine(self.settings.require_database_url())
        producer = AckedProducer(self.settings.kafka, client_id="enrich-test")
        client = self.client(transport)
        fetcher = Fetcher(client, self.policy(**policy), self.settings.bitrix24.enrich_batch_max)
        topics = {e: self.settings.topic(f"raw.bitrix24.{e}") for e in ENTITIES}
        parts = SimpleNamespace(
            engine=engine,
            producer=producer,
            client=client,
            fetcher=fetcher,
            enricher=Enricher(
                engine,
                fetcher,
                producer,
                topics,
                self.settings.topic(DLQ_TOPIC),
                origin="portal.test",
            ),
            poller=CursorPoller(
                engine,
                client,
                producer,
                event_topic=self.settings.topic("raw.bitrix24.event"),
                portal="portal.test",
                entities=self.settings.bitrix24.poll_entities,
                iblock_id=self.settings.bitrix24.product_iblock_id,
            ),
        )
        try:
            return await scenario(parts)
        finally:
            await client.aclose()
            producer.close()
            await engine.dispose()

    def sql(self, query: str, *params) -> list[tuple]:
        url = self.settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            return conn.execute(query, params).fetchall()


def event_record(
    ref: EventRef,
    *,
    partition: int = 0,
    offset: int = 0,
    member_id: str = MEMBER_ID,
    version: str | None = None,
) -> SourceRecord:
    """A raw.bitrix24.event record as the bridge (or, with kind POLL, the poller) writes it."""
    value = ref.record(
        member_id=member_id,
        domain=DOMAIN,
        ts="1736405807",
        received_at="2026-01-01T00:00:00Z",
        version=version,
    )
    return SourceRecord(
        "raw.bitrix24.event",
        partition,
        offset,
        ref.key.encode(),
        json.dumps(value).encode(),
        [("x-request-id", b"req-1")],
    )
