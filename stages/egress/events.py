"""Records the egress worker publishes besides DLQ records: 1С's answers to our writes
(``raw.onec.result``, merged by the entity sink like any source) and alert events such as
cash SLA deviations (``events.cash_sla``). JSON values, CloudEvents binary headers, the
request id of the change that caused them, keyed by the canonical id of the entity."""

from __future__ import annotations

import json
from typing import Any

from mmstream import log as logctx
from mmstream.envelope import REQUEST_ID, CloudEvent, change_id, now_iso
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.retry import retry_forever

SOURCE = "mmstream/egress"


def event_record(
    topic: str, kind: str, entity: str, entity_id: str, payload: dict[str, Any], *, dedupe: str
) -> OutRecord:
    """The record of one event. Its id is stable for (``kind``, entity, ``dedupe``), so a
    repeat after a crash carries the same id and consumers can drop it."""
    event = CloudEvent(
        id=change_id(f"{kind}:{entity}", entity_id, dedupe),
        source=SOURCE,
        type=f"mm.{kind}.v1",
        subject=f"{entity}/{entity_id}",
        time=now_iso(),
        request_id=logctx.current(REQUEST_ID),
    )
    value = json.dumps(payload, ensure_ascii=False, default=str).encode()
    return OutRecord(topic=topic, value=value, key=entity_id.encode(), headers=event.headers())


async def publish(producer: AckedProducer, record: OutRecord, entity: str) -> None:
    """Publish and wait for the broker's ack (retrying while the broker is away)."""
    await retry_forever(
        lambda: producer.send(record), stage="egress", what="event publish", entity=entity
    )
