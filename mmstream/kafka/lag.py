"""End offsets and consumer lag that are right on Apache Kafka and on the embedded broker.

ListOffsets(latest) is answered wrongly by the embedded broker (tansu.md: it returns the
first offset of the last stored batch + 1, below the real end), so it is never taken as the
end. The end is the high watermark carried by every fetch response, read here as follows:

1. ask ListOffsets(latest) anyway: on Kafka it *is* the end, on the embedded broker it is a
   valid offset at or below the end, so fetching from it reads at most one batch;
2. assign a probe consumer (never commits, read_uncommitted like kafka-consumer-groups) at
   those offsets and poll until a fetch response has answered for every partition;
3. librdkafka caches each response's high watermark: ``get_watermark_offsets(cached=True)``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from mmstream.errors import BrokerUnavailable
from mmstream.settings import KafkaSettings

TP = tuple[str, int]
_log = logging.getLogger("librdkafka")


@dataclass(frozen=True)
class Committed:
    """A group's committed position on one partition, with the commit's metadata string."""

    offset: int
    metadata: str | None = None


def probe_consumer(kafka: KafkaSettings, **extra: object) -> Consumer:
    """A consumer for reading positions and records: random group id, never commits."""
    return Consumer(
        {
            **kafka.client_config(),
            "group.id": f"mm-probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_uncommitted",
            # Only the fetch responses' metadata matters: keep the records read small.
            "fetch.max.bytes": 1 << 20,
            "max.partition.fetch.bytes": 1 << 16,
            "fetch.wait.max.ms": 100,
            "allow.auto.create.topics": False,
            "logger": _log,
            **extra,
        }
    )


def admin_for(kafka: KafkaSettings) -> AdminClient:
    """An AdminClient with the project's connection settings."""
    return AdminClient({**kafka.client_config()}, logger=_log)


def list_offsets(
    admin: AdminClient, tps: Iterable[TP], spec: OffsetSpec, timeout_s: float = 10.0
) -> dict[TP, int]:
    """ListOffsets for ``tps``. Trust ``earliest`` anywhere; ``latest`` only as a lower bound."""
    request = {TopicPartition(t, p): spec for t, p in tps}
    if not request:
        return {}
    try:
        futures = admin.list_offsets(request, request_timeout=timeout_s)
        return {(tp.topic, tp.partition): fut.result().offset for tp, fut in futures.items()}
    except KafkaException as exc:
        raise BrokerUnavailable(f"ListOffsets failed: {exc}") from exc


def end_offsets(
    kafka: KafkaSettings,
    tps: Iterable[TP],
    timeout_s: float = 15.0,
    admin: AdminClient | None = None,
) -> dict[TP, int]:
    """(topic, partition) -> high watermark (the offset the next record will get).

    Raises BrokerUnavailable naming the partitions no fetch answered for within the time.
    """
    wanted = sorted(set(tps))
    if not wanted:
        return {}
    starts = list_offsets(admin or admin_for(kafka), wanted, OffsetSpec.latest(), timeout_s)
    consumer = probe_consumer(kafka)
    try:
        consumer.assign([TopicPartition(t, p, max(0, starts[(t, p)])) for t, p in wanted])
        deadline = time.monotonic() + timeout_s
        highs: dict[TP, int] = {}
        while True:
            for t, p in wanted:
                if (t, p) not in highs:
                    _, high = consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
                    if high >= 0:
                        highs[(t, p)] = high
            if len(highs) == len(wanted):
                return highs
            if time.monotonic() > deadline:
                missing = [f"{t}[{p}]" for t, p in wanted if (t, p) not in highs]
                raise BrokerUnavailable(f"no fetch answered within {timeout_s:.0f}s for {missing}")
            consumer.consume(500, timeout=0.1)
    finally:
        consumer.close()


def committed_offsets(
    admin: AdminClient, group: str, tps: Iterable[TP] | None = None, timeout_s: float = 10.0
) -> dict[TP, Committed]:
    """(topic, partition) -> what ``group`` committed; all its partitions when ``tps`` is None.

    Partitions without a commit are left out.
    """
    partitions = None if tps is None else [TopicPartition(t, p) for t, p in tps]
    try:
        futures = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, partitions)], request_timeout=timeout_s
        )
        result = futures[group].result(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"cannot read the committed offsets of group {group!r}: {exc}"
        ) from exc
    return {
        (tp.topic, tp.partition): Committed(tp.offset, tp.metadata or None)
        for tp in result.topic_partitions
        if tp.offset >= 0 and not tp.error
    }


def partition_lag(committed: int | None, end: int) -> int | None:
    """Records after the committed offset; None when the group has committed nothing there."""
    if committed is None:
        return None
    return max(0, end - committed)


class LagProbe:
    """A long-lived tail of some partitions whose cached watermarks stay current, plus
    committed offsets of consumer groups (for status pages that refresh every second)."""

    def __init__(self, kafka: KafkaSettings, partitions: dict[str, int]) -> None:
        self._tps = [(t, p) for t, n in partitions.items() for p in range(n)]
        self._admin = admin_for(kafka)
        self._consumer = probe_consumer(kafka)
        try:
            starts = list_offsets(self._admin, self._tps, OffsetSpec.latest(), timeout_s=5.0)
        except BrokerUnavailable:
            starts = {}  # the broker may still be starting: read from the beginning
        self._consumer.assign(
            [TopicPartition(t, p, starts.get((t, p), OFFSET_BEGINNING)) for t, p in self._tps]
        )

    def refresh(self, budget: int = 5000) -> None:
        """Fetch (and discard) up to ``budget`` records so cached watermarks are current."""
        self._consumer.consume(budget, timeout=0.05)

    def end_offsets(self) -> dict[TP, int]:
        """(topic, partition) -> high watermark, -1 where no fetch has answered yet."""
        out = {}
        for t, p in self._tps:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            out[(t, p)] = high if high >= 0 else -1
        return out

    def committed(self, group: str, timeout_s: float = 5.0) -> dict[TP, int]:
        """(topic, partition) -> committed offset of ``group`` (missing: nothing committed)."""
        done = committed_offsets(self._admin, group, self._tps, timeout_s)
        return {tp: c.offset for tp, c in done.items()}

    def lag(self, group: str, topics: list[str]) -> int:
        """Records of ``topics`` the group has not committed yet (uncommitted partitions count
        from 0, as a new group with auto.offset.reset=earliest would)."""
        ends = self.end_offsets()
        done = self.committed(group)
        return sum(
            max(0, high - done.get(key, 0))
            for key, high in ends.items()
            if key[0] in topics and high >= 0
        )

    def close(self) -> None:
        """Release the probe consumer."""
        self._consumer.close()
