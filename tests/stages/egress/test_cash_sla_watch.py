"""The cash SLA watch (stages/egress/cash_sla.py) against the real PostgreSQL and broker:
every cash document past its SLA and unposted — lagging, parked, dead-lettered, handled but
unposted — raises one event on ``events.cash_sla`` and the metric, once across ticks and
restarts; the posting (stages/egress/cash.py, the real action against the 1С emulator in
process) does not raise a document the watch raised, nor the watch one the posting raised.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY

from connectors.onec.client import OneCClient
from connectors.onec.errors import ODataPostingRefused
from devstack.emulators.onec.app import create_app
from mmstream.db.engine import async_engine
from mmstream.kafka.admin import apply
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.settings import OneCSettings
from mmstream.topics import TopicCatalog, load_catalog
from stages.egress.actions import Targets
from stages.egress.cash import AdvanceReportPosting, CashReceiptPosting
from stages.egress.cash_sla import LOCK_KEY, CashSlaWatch, dlq_lookup
from stages.egress.delivery import Change, Crosswalk
from tests.support.topics import count_records

SLA = 900.0
EVENTS = "events.cash_sla"
DLQS = [f"dlq.egress.onec.{k}" for k in ("cash_receipt", "cash_expense", "advance_report")]
BASE = "http://1c.test"


def pg(settings) -> psycopg.Connection:
    return psycopg.connect(
        settings.require_database_url().replace("postgresql+psycopg://", "postgresql://"),
        autocommit=True,
    )


def insert(
    conn,
    table: str,
    *,
    date: datetime,
    posted: bool = False,
    deleted: bool = False,
    number: str = "0000-000001",
) -> tuple[str, str]:
    """A cash document row as the entity sink stores 1С's push; (id, event_id). Columns the
    test does not care about get an empty value of their type."""
    doc, event = str(uuid.uuid4()), str(uuid.uuid4())
    required = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL",
        (table,),
    ).fetchall()
    empty = {
        "text": "",
        "jsonb": "[]",
        "boolean": False,
        "uuid": str(uuid.uuid4()),
        "bigint": 0,
        "integer": 0,
        "numeric": 0,
    }
    values = {name: empty.get(kind, "") for name, kind in required}
    values.update(
        {
            "id": doc,
            "source": "onec",
            "version": "AAAAAQ==",
            "deleted": deleted,
            "external_ids": json.dumps({"onec": doc}),
            "number": number,
            "date": date,
            "posted": posted,
            "amount": "1500.50",
            "event_id": event,
        }
    )
    cols = ", ".join(f'"{c}"' for c in values)
    conn.execute(
        f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join(["%s"] * len(values))})',
        list(values.values()),
    )
    return doc, event


def delivered(conn, entity: str, doc: str, event: str, external_id: str | None) -> None:
    conn.execute(
        "INSERT INTO egress_delivery (target, entity, entity_id, last_outbox_id, "
        "last_event_id, external_id) VALUES ('onec', %s, %s, 1, %s, %s)",
        (entity, doc, event, external_id),
    )


def parked(conn, entity: str, doc: str) -> None:
    conn.execute(
        "INSERT INTO egress_parked (target, entity, entity_id, source_topic, "
        "source_partition, source_offset, attempts, first_failure, last_failure, "
        "last_error, error_code) VALUES ('onec', %s, %s, %s, 0, 7, 3, now(), now(), "
        "'503 base_unavailable', 'base_unavailable')",
        (entity, doc, f"egress.onec.{entity}"),
    )


def deviations(entity: str) -> float:
    return REGISTRY.get_sample_value("mm_cash_sla_deviations_total", {"document": entity}) or 0.0


def events_by_id(settings, expect: int) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for msg in count_records(settings, EVENTS, expect, timeout_s=20, quiet_s=1.0):
        found.setdefault(msg.key().decode(), []).append(json.loads(msg.value()))
    return found


def test_every_unposted_document_past_its_sla_raises_once_and_the_posting_does_not_double(settings):
    catalog = load_catalog(settings.topics_file)
    apply(
        settings,
        TopicCatalog(topics={n: catalog[n] for n in (EVENTS, *DLQS)}, copartition_groups={}),
    )
    now = datetime.now(UTC)
    late, recent, too_old = (
        now - timedelta(hours=2),
        now - timedelta(minutes=1),
        now - timedelta(days=30),
    )
    with pg(settings) as conn:
        lagging, _ = insert(conn, "cash_receipt", date=late)
        stuck, _ = insert(conn, "cash_receipt", date=late)
        parked(conn, "cash_receipt", stuck)
        dead, _ = insert(conn, "cash_expense", date=late)
        handled, handled_event = insert(conn, "advance_report", date=late)
        delivered(conn, "advance_report", handled, handled_event, None)  # posting was off
        # Not raised: in time, posted, deleted, before the horizon, posted by the egress.
        insert(conn, "cash_receipt", date=recent)
        insert(conn, "cash_receipt", date=late, posted=True)
        insert(conn, "cash_expense", date=late, deleted=True)
        insert(conn, "cash_expense", date=too_old)
        ours, ours_event = insert(conn, "cash_receipt", date=late)
        delivered(conn, "cash_receipt", ours, ours_event, ours)
        # Refused by 1С at posting time (below), then dead-lettered: the watch keeps off it.
        refused, _ = insert(conn, "advance_report", date=now - timedelta(days=2))
    before = {k: deviations(k) for k in ("cash_receipt", "cash_expense", "advance_report")}

    onec = create_app()
    client = OneCClient(
        OneCSettings(base_url=f"{BASE}/trade/hs/mm/", timezone="UTC"),
        transport=httpx.ASGITransport(app=onec),
    )
    odata = httpx.AsyncClient(transport=httpx.ASGITransport(app=onec), base_url=BASE)

    async def seed(entity_set: str, doc: str, dated: datetime) -> None:
        record = {
            "Ref_Key": doc,
            "DataVersion": "AAAAAQ==",
            "DeletionMark": False,
            "Number": "0000-000001",
            "Date": dated.replace(tzinfo=None).isoformat(),
            "Posted": False,
        }
        (await odata.put(f"/_emulator/odata/{entity_set}", json=record)).raise_for_status()

    def change(entity: str, doc: str, dated: datetime) -> Change:
        return Change(
            entity=entity,
            entity_id=doc,
            change="upsert",
            outbox_id=9,
            event_id=str(uuid.uuid4()),
            payload={
                "id": doc,
                "source": "onec",
                "version": "AAAAAg==",
                "posted": False,
                "deleted": False,
                "number": "0000-000001",
                "date": dated.isoformat(),
                "amount": 1500.5,
            },
        )

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="cash-sla-test")
        s = settings.model_copy(
            update={"flows": settings.flows.model_copy(update={"cash_sla_s": SLA})}
        )
        targets = Targets(settings=s, bitrix24=None, onec=client, producer=producer)  # type: ignore[arg-type]
        try:
            # The DLQ holds the expense document: its retries ran out.
            await producer.send(
                OutRecord(
                    topic=settings.topic("dlq.egress.onec.cash_expense"),
                    key=dead.encode(),
                    value=b"{}",
                    headers=[],
                )
            )
            # 1С refuses the report (closed period): the posting raises it first.
            (
                await odata.put(
                    "/_emulator/rules",
                    json={
                        "closed_before": (now - timedelta(days=1)).replace(tzinfo=None).isoformat()
                    },
                )
            ).raise_for_status()
            await seed("Document_АвансовыйОтчет", refused, now - timedelta(days=2))
            with pytest.raises(ODataPostingRefused):
                await AdvanceReportPosting(targets).apply(
                    change("advance_report", refused, now - timedelta(days=2)), Crosswalk(engine)
                )

            watch = CashSlaWatch(
                engine, producer, s, dead_lettered=dlq_lookup(s), lagging_grace_s=0
            )
            first = await watch.tick()
            again = await watch.tick()
            restarted = await CashSlaWatch(engine, producer, s, lagging_grace_s=0).tick()

            # The lagging receipt finally reaches 1С and is posted, late: no second event.
            await seed("Document_ПриходныйКассовыйОрдер", lagging, late)
            posted = await CashReceiptPosting(targets).apply(
                change("cash_receipt", lagging, late), Crosswalk(engine)
            )
            return first, again, restarted, posted
        finally:
            await odata.aclose()
            await engine.dispose()
            producer.close()

    first, again, restarted, posted = asyncio.run(main())
    assert (first, again, restarted) == (4, 0, 0)
    assert posted == lagging
    assert onec.state.base.sets["Document_ПриходныйКассовыйОрдер"][lagging]["Posted"] is True

    events = events_by_id(settings, 5)
    assert {doc: [e["outcome"] for e in evs] for doc, evs in events.items()} == {
        lagging: ["lagging"],
        stuck: ["parked"],
        dead: ["dead_lettered"],
        handled: ["unposted"],
        refused: ["refused"],
    }
    assert 2 * 3600 - SLA - 120 < events[stuck][0]["late_by_s"] < 2 * 3600 - SLA + 120
    assert events[lagging][0]["amount"] == "1500.50"
    assert {k: deviations(k) - before[k] for k in before} == {
        "cash_receipt": 2,
        "cash_expense": 1,
        "advance_report": 2,
    }
    with pg(settings) as conn:
        rows = conn.execute(
            "SELECT document_id, outcome, raised_by, published_at IS NOT NULL "
            "FROM cash_sla_deviation"
        ).fetchall()
    assert sorted(rows) == sorted(
        [
            (lagging, "lagging", "watch", True),
            (stuck, "parked", "watch", True),
            (dead, "dead_lettered", "watch", True),
            (handled, "unposted", "watch", True),
            (refused, "refused", "posting", True),
        ]
    )


def test_a_claim_a_crash_left_unpublished_is_published_by_a_later_tick(settings):
    catalog = load_catalog(settings.topics_file)
    apply(settings, TopicCatalog(topics={EVENTS: catalog[EVENTS]}, copartition_groups={}))
    doc = str(uuid.uuid4())
    event = {
        "entity": "cash_receipt",
        "id": doc,
        "number": "1",
        "date": "2026-12-07T09:00:00+00:00",
        "outcome": "posted",
        "at": "2026-12-07T10:00:00+00:00",
        "sla_s": SLA,
        "late_by_s": 2700.0,
        "amount": None,
        "employee_id": None,
    }
    with pg(settings) as conn:
        # Claimed by a posting that died before publishing, three minutes ago.
        conn.execute(
            "INSERT INTO cash_sla_deviation (entity, document_id, outcome, raised_by, "
            "event, raised_at) VALUES ('cash_receipt', %s, 'posted', 'posting', %s, "
            "now() - interval '3 minutes')",
            (doc, json.dumps(event)),
        )

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="cash-sla-test")
        try:
            watch = CashSlaWatch(engine, producer, settings, dead_lettered=_none)
            return await watch.tick(), await watch.tick()
        finally:
            await engine.dispose()
            producer.close()

    assert asyncio.run(main()) == (0, 0)  # nothing new raised; the old claim published once
    events = events_by_id(settings, 1)
    assert events == {doc: [event]}
    with pg(settings) as conn:
        assert conn.execute(
            "SELECT published_at IS NOT NULL FROM cash_sla_deviation"
        ).fetchall() == [(True,)]


async def _none(entity: str, ids: set[str]) -> set[str]:
    return set()


def test_one_replica_scans_at_a_time(settings):
    catalog = load_catalog(settings.topics_file)
    apply(settings, TopicCatalog(topics={EVENTS: catalog[EVENTS]}, copartition_groups={}))
    with pg(settings) as conn:
        doc, _ = insert(conn, "cash_receipt", date=datetime.now(UTC) - timedelta(hours=1))

    async def main(other):
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="cash-sla-test")
        try:
            watch = CashSlaWatch(engine, producer, settings, dead_lettered=_none, lagging_grace_s=0)
            # Another replica is scanning: this one skips its tick.
            other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            skipped = await watch.tick()
            other.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            # Two replicas at once: the lock (and the claim) let one raise it.
            both = await asyncio.gather(
                watch.tick(),
                CashSlaWatch(
                    engine, producer, settings, dead_lettered=_none, lagging_grace_s=0
                ).tick(),
            )
            return skipped, sorted(both)
        finally:
            await engine.dispose()
            producer.close()

    with pg(settings) as other:
        assert asyncio.run(main(other)) == (0, [0, 1])
    assert list(events_by_id(settings, 1)) == [doc]
