"""Publishing accepted records to raw topics and waiting for the broker's acknowledgement."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from connectors.ingress.errors import ApiError, ErrorKind
from mmstream.envelope import CloudEvent, now_iso
from mmstream.errors import BrokerUnavailable, MMStreamError
from mmstream.kafka.producer import AckedProducer, Delivered, OutRecord
from mmstream.metrics import PRODUCE_LATENCY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """A validated record ready to publish: its key, original bytes and event attributes."""

    key: str
    value: bytes
    event: CloudEvent


async def publish(producer: AckedProducer, topic: str, records: list[Accepted],
                  retry_after_s: int) -> list[Delivered]:
    """Produce and await acks=all; any failure is a 503 with Retry-After, never a 2xx."""
    started = time.perf_counter()
    try:
        delivered = await producer.send_many(
            [OutRecord(topic, r.value, r.key.encode(), r.event.headers()) for r in records]
        )
    except MMStreamError as exc:
        transient = isinstance(exc, BrokerUnavailable) or exc.retriable
        raise ApiError(
            ErrorKind.BROKER_UNAVAILABLE,
            "the record was not stored: Kafka did not acknowledge it"
            + ("; retry later" if transient else f" ({exc})"),
            headers={"Retry-After": str(retry_after_s)},
        ) from exc
    PRODUCE_LATENCY.labels("bridge").observe(time.perf_counter() - started)
    # One line per request: per-record lines cost more than the rest of a batch record's work.
    if len(records) == 1:
        rec, dlv = records[0], delivered[0]
        log.info("record accepted", extra={"event_id": rec.event.id, "subject": rec.key,
                                           "topic": dlv.topic, "partition": dlv.partition,
                                           "offset": dlv.offset})
    else:
        log.info("records accepted", extra={"records": len(records), "topic": topic})
    return delivered


def onec_event(*, entity: str, source_id: str, version: str, principal: str,
               request_id: str, event_id: str) -> CloudEvent:
    """CloudEvent attributes of a record pushed by 1C."""
    return CloudEvent(
        id=event_id,
        source=f"/onec/{principal}",
        type=f"ru.mastermobile.onec.{entity}.v1",
        subject=source_id,
        time=now_iso(),
        request_id=request_id,
    )
