"""Real consumer groups for the operator-tool tests: known records, a member that commits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, Producer, TopicPartition

from mmstream.settings import Settings

BASE_TS_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def produce(
    settings: Settings,
    topic: str,
    counts: dict[int, int],
    *,
    batches: int = 3,
    ts_of=lambda partition, i: BASE_TS_MS + i * 1000,
) -> None:
    """Write ``counts[p]`` records to partition p, flushed in several batches (several
    stored batches per partition is what the embedded broker's ListOffsets gets wrong)."""
    producer = Producer(
        {
            **settings.kafka.client_config(),
            "linger.ms": 5,
            "enable.idempotence": False,
            "allow.auto.create.topics": False,
        }
    )
    for partition, n in counts.items():
        step = max(1, n // batches)
        for i in range(n):
            producer.produce(
                topic,
                f"{partition}-{i}".encode(),
                key=f"k{i}".encode(),
                partition=partition,
                timestamp=ts_of(partition, i),
            )
            if (i + 1) % step == 0:
                producer.flush(30)
    assert producer.flush(30) == 0


@contextmanager
def member(settings: Settings, group: str, topics: list[str]) -> Iterator[Consumer]:
    """A subscribed (active) member of ``group``, joined before the block runs; leaves after."""
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": group,
            "client.id": f"member-of-{group}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 500,
            "allow.auto.create.topics": False,
        }
    )
    consumer.subscribe(topics)
    deadline = time.monotonic() + 90
    while not consumer.assignment():
        assert time.monotonic() < deadline, f"{group} got no assignment"
        consumer.poll(0.2)
    try:
        yield consumer
    finally:
        consumer.close()


def commit(
    settings: Settings, group: str, topics: list[str], offsets: dict[tuple[str, int], int]
) -> None:
    """Join ``group`` with a real member, commit ``offsets`` synchronously, leave."""
    with member(settings, group, topics) as consumer:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
