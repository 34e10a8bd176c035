"""Reading a test's topics back with a plain consumer."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from mmstream.settings import Settings
from mmstream.topics import load_catalog


def count_records(
    settings: Settings,
    name: str,
    expect_at_least: int = 0,
    timeout_s: float = 20.0,
    quiet_s: float = 1.5,
) -> list:
    """Every record of a declared topic, read from offset 0 until ``quiet_s`` of silence
    after at least ``expect_at_least`` records (or the timeout).

    ``quiet_s=0``: no wait for stragglers — once ``expect_at_least`` records are in, read up
    to the partitions' end offsets as they are then. Exact, and 1.5 s faster a call, where
    every producer of the topic was acknowledged before the call (the bridge answered 202,
    a sink's batch returned); keep the quiet window where a worker may still be writing."""
    topic = settings.topic(name)
    parts = load_catalog(settings.topics_file)[name].partitions
    exact = not quiet_s
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": exact,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(parts)])
    out: list = []
    at_end: set[int] = set()  # partitions read to their end offset (no record since)
    deadline = time.monotonic() + timeout_s
    quiet_until = time.monotonic() + quiet_s
    try:
        while time.monotonic() < deadline:
            if exact and len(out) >= expect_at_least and len(at_end) == parts:
                break
            msg = consumer.poll(0.1)
            if msg is None:
                if not exact and len(out) >= expect_at_least and time.monotonic() > quiet_until:
                    break
                continue
            if not msg.error():
                out.append(msg)
                at_end.discard(msg.partition())
                quiet_until = time.monotonic() + quiet_s
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
    finally:
        consumer.close()
    return out
