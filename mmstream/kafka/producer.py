"""An asyncio-friendly, acknowledged producer on confluent-kafka (librdkafka).

``send`` resolves only when the broker acknowledged the record with acks=all, or raises a
project error: BrokerUnavailable (retriable: timeouts, brokers down), ValueRejected (the broker
refused the record itself: too large) or BrokerRefused (the cluster refused the write).
Idempotence and transactions stay off: the embedded broker does not support them and the
pipeline's guarantees come from idempotent sinks instead (see design.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from mmstream.errors import BrokerRefused, BrokerUnavailable, MMStreamError, ValueRejected
from mmstream.kafka.message import MissingPosition, position
from mmstream.settings import KafkaSettings

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Delivered:
    """Where an acknowledged record landed."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class OutRecord:
    """A record to produce; ``partition`` None means "by key" (murmur2, as Java and Faust)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers | None = None
    partition: int | None = None


def delivery_error(err: KafkaError) -> MMStreamError:
    """The one place that decides whether a failed delivery is worth retrying."""
    transient = err.retriable() or err.code() in (
        KafkaError._MSG_TIMED_OUT,  # noqa: SLF001 — librdkafka local error codes are public
        KafkaError._TIMED_OUT,  # noqa: SLF001 — librdkafka local error codes are public
        KafkaError._TRANSPORT,  # noqa: SLF001 — librdkafka local error codes are public
        KafkaError._ALL_BROKERS_DOWN,  # noqa: SLF001 — librdkafka local error codes are public
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.REQUEST_TIMED_OUT,
    )
    # The record itself is what the broker refused (too large, malformed): the record's
    # fault, dead-lettered by the stage. Any other refusal is the cluster's (authorization,
    # configuration): never dead-lettered, the worker stops.
    record_fault = err.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD)
    cls = BrokerUnavailable if transient else ValueRejected if record_fault else BrokerRefused
    return cls(f"kafka delivery failed: {err.name()}: {err.str()}")


class AckedProducer:
    """One librdkafka producer per process, polled by a background thread."""

    def __init__(
        self, kafka: KafkaSettings, *, client_id: str, linger_ms: int | None = None
    ) -> None:
        conf = {
            **kafka.client_config(),
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": kafka.linger_ms if linger_ms is None else linger_ms,
            "message.timeout.ms": int(kafka.produce_timeout_s * 1000),
            "partitioner": "murmur2_random",
            "compression.type": "lz4",
            "error_cb": self._on_error,
            # librdkafka's own log lines go through Python logging (JSON), not raw stderr.
            "logger": logging.getLogger("librdkafka"),
        }
        self._producer = Producer(conf)
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._poll_loop, name=f"{client_id}-poll", daemon=True
        )
        self._thread.start()

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    @staticmethod
    def _on_error(err: KafkaError) -> None:
        log.warning("kafka client error", extra={"kafka_error": err.name(), "detail": err.str()})

    async def send(self, record: OutRecord) -> Delivered:
        """Produce one record and wait for its acknowledgement."""
        return (await self.send_many([record]))[0]

    async def send_many(self, records: Sequence[OutRecord]) -> list[Delivered]:
        """Produce records in order and wait until all are acknowledged.

        Raises the first delivery error; records of the same call may then be partly
        written, which callers handle by retrying the whole call (consumers dedupe by id).
        """
        if not records:
            return []
        batch = _Batch(asyncio.get_running_loop(), len(records))
        for index, rec in enumerate(records):
            kwargs = {
                "value": rec.value,
                "key": rec.key,
                "headers": rec.headers or [],
                "on_delivery": batch.callback(index),
            }
            if rec.partition is not None:
                kwargs["partition"] = rec.partition
            while True:
                try:
                    self._producer.produce(rec.topic, **kwargs)
                    break
                except BufferError:
                    # Local queue full: let the poll thread drain acknowledgements.
                    await asyncio.sleep(0.01)
                except KafkaException as exc:
                    # Records already queued still report; the caller retries the call.
                    raise delivery_error(exc.args[0]) from exc
        return await batch.done

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is queued (bounded) and stop the poll thread."""
        self._producer.flush(timeout_s)
        self._closed.set()
        self._thread.join(timeout=1.0)


class _Batch:
    """Acknowledgements of one send_many call, collected in the poll thread.

    One wake-up of the event loop per call rather than one per record: with thousands of
    records per batch, per-record call_soon_threadsafe costs more than the produce itself.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.results: list[Delivered | None] = [None] * size
        self.pending = size
        self.error: Exception | None = None
        self.lock = threading.Lock()
        self.done: asyncio.Future[list[Delivered]] = loop.create_future()

    def callback(self, index: int):
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            with self.lock:
                if err is not None:
                    self.error = self.error or delivery_error(err)
                else:
                    try:
                        self.results[index] = Delivered(*position(msg))
                    except MissingPosition as exc:
                        # Kept for the caller: raised here it would end the poll thread and
                        # leave every send waiting forever.
                        self.error = self.error or exc
                self.pending -= 1
                finished = self.pending == 0
            if finished:
                self.loop.call_soon_threadsafe(self._finish)

        return on_delivery

    def _finish(self) -> None:
        if self.done.done():
            return
        if self.error is not None:
            self.done.set_exception(self.error)
        else:
            self.done.set_result(self.results)  # type: ignore[arg-type]
