"""Consumer lag that is right on Apache Kafka and on the embedded broker.

The embedded broker answers ListOffsets(latest) wrongly (see tansu.md), so end offsets are
read from fetch responses instead: a probe consumer (never committing) is assigned to
the partitions and polls; after each fetch librdkafka caches the partition's high
watermark, which is correct on both.
"""

from __future__ import annotations

import logging
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from mmstream.settings import KafkaSettings


class LagProbe:
    """High watermarks of some partitions plus committed offsets of consumer groups."""

    def __init__(self, kafka: KafkaSettings, partitions: dict[str, int]) -> None:
        self._consumer = Consumer({
            **kafka.client_config(),
            "group.id": f"mm-lag-probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.max.bytes": 1 << 20,
            "logger": logging.getLogger("librdkafka"),
        })
        self._tps = [TopicPartition(t, p, OFFSET_BEGINNING) for t, n in partitions.items() for p in range(n)]
        self._consumer.assign(self._tps)
        self._admin = AdminClient({**kafka.client_config(), "logger": logging.getLogger("librdkafka")})

    def refresh(self, budget: int = 5000) -> None:
        """Fetch (and discard) up to ``budget`` records so cached watermarks are current."""
        self._consumer.consume(budget, timeout=0.05)

    def end_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> high watermark, -1 where no fetch has answered yet."""
        out = {}
        for tp in self._tps:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
            out[(tp.topic, tp.partition)] = high
        return out

    def committed(self, group: str, timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
        """(topic, partition) -> committed offset of ``group`` (missing: nothing committed)."""
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(tp.topic, tp.partition) for tp in self._tps])
        futures = self._admin.list_consumer_group_offsets([req], request_timeout=timeout_s)
        result = futures[group].result(timeout=timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}

    def lag(self, group: str, topics: list[str]) -> int:
        """Records of ``topics`` the group has not committed yet."""
        ends = self.end_offsets()
        done = self.committed(group)
        return sum(max(0, high - done.get(key, 0)) for key, high in ends.items()
                   if key[0] in topics and high >= 0)

    def close(self) -> None:
        self._consumer.close()
