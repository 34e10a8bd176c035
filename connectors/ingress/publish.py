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

# librdkafka's name of the error, the same for its local check (message.max.bytes) and the
# broker's answer (the topic's max.message.bytes); the producer keeps it in its message.
_SIZE_REFUSED = "MSG_SIZE_TOO_LARGE"


@dataclass(frozen=True)
class Accepted:
    """A validated record ready to publish: its key, original bytes and event attributes."""

    key: str
    value: bytes
    event: CloudEvent


# What librdkafka adds to a record's value + key + headers when it checks message.max.bytes
# is only the headers' varint framing; this margin covers it and the record's own framing.
_RECORD_OVERHEAD = 512


def record_size(record: Accepted) -> int:
    """The bytes a record takes against the broker's limit (value, key and headers)."""
    headers = sum(len(k) + len(v) for k, v in record.event.headers())
    return len(record.value) + len(record.key.encode()) + headers + _RECORD_OVERHEAD


def too_large(record: Accepted, max_record_bytes: int) -> str | None:
    """Why the broker would refuse this record (its size), or None when it fits."""
    size = record_size(record)
    if size <= max_record_bytes:
        return None
    return (
        f"the record takes {size} bytes and Kafka takes at most {max_record_bytes} per record; "
        "it will never be stored: split it or leave out large fields"
    )


def record_too_large(message: str) -> ApiError:
    """413 ``record_too_large``: definite, so 1С stops re-sending (a 503 would be forever)."""
    return ApiError(ErrorKind.RECORD_TOO_LARGE, message)


async def publish(
    producer: AckedProducer,
    topic: str,
    records: list[Accepted],
    retry_after_s: int,
    max_record_bytes: int | None = None,
) -> list[Delivered]:
    """Produce and await acks=all; a failure is a 503 with Retry-After, never a 2xx.

    A record too large for the broker is 413 ``record_too_large`` instead, whether caught by
    size before producing (``max_record_bytes``) or refused by the client or the broker
    (MSG_SIZE_TOO_LARGE): retrying it can never succeed.
    """
    if max_record_bytes is not None:
        for record in records:
            if (reason := too_large(record, max_record_bytes)) is not None:
                raise record_too_large(reason)
    started = time.perf_counter()
    try:
        delivered = await producer.send_many(
            [OutRecord(topic, r.value, r.key.encode(), r.event.headers()) for r in records]
        )
    except MMStreamError as exc:
        if _SIZE_REFUSED in str(exc):
            raise record_too_large(
                "Kafka refused the record as too large (MSG_SIZE_TOO_LARGE); "
                "it will never be stored: split it or leave out large fields"
            ) from exc
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
        log.info(
            "record accepted",
            extra={
                "event_id": rec.event.id,
                "subject": rec.key,
                "topic": dlv.topic,
                "partition": dlv.partition,
                "offset": dlv.offset,
            },
        )
    else:
        log.info("records accepted", extra={"records": len(records), "topic": topic})
    return delivered


def onec_event(
    *, entity: str, source_id: str, version: str, principal: str, request_id: str, event_id: str
) -> CloudEvent:
    """CloudEvent attributes of a record pushed by 1С."""
    return CloudEvent(
        id=event_id,
        source=f"/onec/{principal}",
        type=f"ru.mastermobile.onec.{entity}.v1",
        subject=source_id,
        time=now_iso(),
        request_id=request_id,
    )
