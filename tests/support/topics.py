"""Reading a test's topics back with a plain consumer."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from mmstream.settings import Settings
from mmstream.topics import load_catalog


def count_records(settings: Settings, name: str, expect_at_least: int = 0, timeout_s: float = 20.0,
                  quiet_s: float = 1.5) -> list:
    """Every record of a declared topic, read from offset 0 until ``quiet_s`` of silence
    after at least ``expect_at_least`` records (or the timeout)."""
    topic = settings.topic(name)
    parts = load_catalog(settings.topics_file)[name].partitions
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(parts)])
    out: list = []
    deadline = time.monotonic() + timeout_s
    quiet_until = time.monotonic() + quiet_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None:
                if len(out) >= expect_at_least and time.monotonic() > quiet_until:
                    break
                continue
            if not msg.error():
                out.append(msg)
                quiet_until = time.monotonic() + quiet_s
    finally:
        consumer.close()
    return out
