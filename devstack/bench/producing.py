"""Producing a list of records with a plain confluent-kafka producer, in-process.

Used twice: to pre-fill the raw topic for the pipeline benchmark, and as the batch-ingress
baseline ("the raw producer"). The configuration is the bridge's AckedProducer's (acks=all,
linger 5 ms, lz4, murmur2_random) without its per-record asyncio futures, so the baseline
is the bulk ceiling of the client the bridge uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from devstack.bench.processes import BenchError
from devstack.bench.workload import RawRecord
from mmstream.settings import Settings


@dataclass(frozen=True)
class Produced:
    """Elapsed seconds (first produce to flush done) and where each record landed."""

    elapsed_s: float
    positions: list[tuple[int, int]]  # (partition, offset) per record, in input order


def produce_all(
    settings: Settings,
    topic: str,
    records: list[RawRecord],
    *,
    linger_ms: int = 5,
    timeout_s: float = 120.0,
) -> Produced:
    """Produce every record (acks=all) and flush; BenchError if any delivery failed."""
    producer = Producer(
        {
            **settings.kafka.client_config(),
            "client.id": "mm-bench-producer",
            "acks": "all",
            "enable.idempotence": False,  # the embedded broker does not support it (tansu.md)
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        }
    )
    positions: list[tuple[int, int]] = [(-1, -1)] * len(records)
    failures: list[str] = []

    def delivered(index: int):
        def callback(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(err.str())
            else:
                positions[index] = (msg.partition(), msg.offset())

        return callback

    # Connect and fetch the topic's metadata before the clock starts: at ~100k records/s
    # the bootstrap would otherwise be a visible part of a sub-second measurement.
    producer.list_topics(topic, timeout=10)
    started = time.perf_counter()
    for i, rec in enumerate(records):
        while True:
            try:
                producer.produce(
                    topic, rec.value, rec.key, headers=rec.headers, on_delivery=delivered(i)
                )
                break
            except BufferError:
                producer.poll(0.01)  # local queue full: serve delivery reports, then retry
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    elapsed = time.perf_counter() - started
    if remaining:
        raise BenchError(f"{remaining} records still unacknowledged after {timeout_s:.0f}s")
    if failures:
        raise BenchError(f"{len(failures)} deliveries failed, first: {failures[0]}")
    return Produced(elapsed, positions)
