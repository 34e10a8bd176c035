"""A replayed DLQ change that a later delivery superseded (stages/egress/delivery.py
``_superseded``): a later no-op delivery (another system's own change, not echoed back) may
have advanced the entity's last delivery past a dead-lettered change whose data never reached
the target, so skipping its replay would lose that data. The entity's current row is
delivered instead, marked so the action writes it; a plain redelivery of a delivered change is
still skipped. Real PostgreSQL; the action records what the target would have seen."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import ClassVar

import psycopg

from mmstream.db.engine import async_engine
from mmstream.kafka.producer import AckedProducer
from mmstream.retry import RetryPolicy
from stages.dlq.replay import REPLAY_HEADER
from stages.egress.delivery import Change, Crosswalk, EntityEgress
from stages.outbox.relay import OUTBOX_ID
from stages.outbox.restate import REPAIR_MARK
from stages.source_record import SourceRecord


class Warehouses:
    """An action for warehouses that writes 1С's changes and skips Bitrix24's own."""

    target: ClassVar[str] = "test"
    entity: ClassVar[str] = "warehouse"

    def __init__(self) -> None:
        self.written: list[tuple[int, str]] = []

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        if change.payload.get("source") == "bitrix24" and not change.payload.get(REPAIR_MARK):
            return None  # an echo: nothing to write
        self.written.append((change.outbox_id, change.payload["name"]))
        return "ext"


def record(entity_id: str, outbox_id: int, source: str, *, replay: str | None = None):
    value = json.dumps({"id": entity_id, "source": source, "name": f"v{outbox_id}"}).encode()
    headers = [
        (OUTBOX_ID, str(outbox_id).encode()),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", b"ru.mastermobile.warehouse.upsert.v1"),
    ]
    if replay:
        headers.append((REPLAY_HEADER, replay.encode()))
    return SourceRecord(
        topic="egress.test.warehouse",
        partition=0,
        offset=outbox_id,
        key=entity_id.encode(),
        value=value,
        headers=headers,
    )


def pg(settings) -> psycopg.Connection:
    url = settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True)


def stored_warehouse(settings, ident: str) -> None:
    """The warehouse's merged row (last written by Bitrix24) and its last outbox entry."""
    with pg(settings) as conn:
        conn.execute(
            'INSERT INTO "warehouse" (id, source, version, deleted, external_ids, code, name, '
            "is_folder, address, kind, phones, comment, event_id) VALUES (%s, 'bitrix24', 'v3', "
            "false, '{}', '', 'Склад 1С v2', false, '', 'warehouse', '[]', '', %s)",
            (ident, uuid.uuid4()),
        )
        conn.execute(
            "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, "
            "source_partition, source_offset, payload) VALUES (%s, 'warehouse', %s, 'upsert', "
            "'v3', 'raw.bitrix24.store', 2, 7, '{}')",
            (uuid.uuid4(), ident),
        )


def run(settings, *records: SourceRecord, action=None) -> tuple[list[str], Warehouses]:
    action = action or Warehouses()

    async def main():
        engine = async_engine(settings)
        producer = AckedProducer(settings.kafka, client_id="superseded-replay-test")
        try:
            egress = EntityEgress(
                engine,
                action,
                producer,
                RetryPolicy.from_settings(settings.retry),
                f"dlq.egress.test.{action.entity}",
                lease_s=30.0,
            )
            return [await egress.deliver(r) for r in records]
        finally:
            producer.close()
            await engine.dispose()

    return asyncio.run(main()), action


def outbox_entries(settings, ident: str) -> int:
    with pg(settings) as conn:
        return conn.execute(
            "SELECT count(*) FROM outbox WHERE entity_id = %s", (ident,)
        ).fetchone()[0]


def test_a_replay_superseded_by_a_no_op_delivers_the_current_row(settings):
    ident = str(uuid.uuid4())
    stored_warehouse(settings, ident)
    # 1С's change 1 is written; change 2 was dead-lettered (not delivered here); Bitrix24's
    # own change 3 is "delivered" as a no-op; then the operator replays change 2.
    outcomes, action = run(
        settings,
        record(ident, 1, "onec"),
        record(ident, 3, "bitrix24"),
        record(ident, 2, "onec", replay="replay-42"),
    )
    assert outcomes == ["delivered", "delivered", "delivered"]
    # The replay wrote the entity's current row (last written by Bitrix24, marked), not the
    # replayed change's older data; nothing new in the outbox (no second version published).
    assert action.written == [(1, "v1"), (2, "Склад 1С v2")]
    assert outbox_entries(settings, ident) == 1


def test_a_replay_of_the_change_delivered_last_is_skipped(settings):
    ident = str(uuid.uuid4())
    stored_warehouse(settings, ident)
    outcomes, action = run(
        settings, record(ident, 1, "onec"), record(ident, 1, "onec", replay="replay-43")
    )
    assert outcomes == ["delivered", "skipped"]
    assert action.written == [(1, "v1")]


def test_a_plain_redelivery_of_a_delivered_change_is_still_skipped(settings):
    ident = str(uuid.uuid4())
    stored_warehouse(settings, ident)
    outcomes, action = run(settings, record(ident, 1, "onec"), record(ident, 1, "onec"))
    assert outcomes == ["delivered", "skipped"]
    assert action.written == [(1, "v1")]


def test_a_replay_of_an_entity_without_a_table_is_skipped(settings):
    class Things(Warehouses):
        entity: ClassVar[str] = "thing"

    ident = str(uuid.uuid4())
    outcomes, _ = run(
        settings,
        record(ident, 5, "onec"),
        record(ident, 4, "onec", replay="replay-7"),
        action=Things(),
    )
    assert outcomes == ["delivered", "skipped"]
