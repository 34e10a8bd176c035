"""Reading a DLQ topic from its beginning to a fixed end, without a consumer group.

The scan covers ``[earliest, high watermark)`` of every partition as they are when it
starts, so a DLQ that keeps growing still gives a finite, consistent answer. The end comes
from :func:`mmstream.kafka.lag.end_offsets` (fetch-response high watermarks), never from
ListOffsets(latest) alone, which the embedded broker answers wrongly (see tansu.md).
Partitions are assigned by hand and nothing is committed: reading a DLQ leaves no trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import OffsetSpec

from mmstream.dlq.entry import DlqEntry
from mmstream.errors import BrokerUnavailable, TopicMissing
from mmstream.kafka.admin import admin_client, existing_topics
from mmstream.kafka.lag import end_offsets, list_offsets, probe_consumer
from mmstream.settings import Settings

log = logging.getLogger(__name__)

#: progress(records read so far, records in the scan)
Progress = Callable[[int, int], None]


@dataclass
class ScanState:
    """Where a scan stands; ``incomplete`` names partitions it gave up on (idle timeout)."""

    start: dict[int, int] = field(default_factory=dict)
    end: dict[int, int] = field(default_factory=dict)
    read: int = 0
    incomplete: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Records in the scan (offsets between start and end; gaps make it an upper bound)."""
        return sum(max(0, self.end[p] - self.start[p]) for p in self.start)


class DlqReader:
    """Scans one physical topic; each call to :meth:`scan` reads it from the beginning."""

    def __init__(
        self, settings: Settings, topic: str, *, idle_timeout_s: float = 20.0, batch: int = 1000
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.idle_timeout_s = idle_timeout_s
        self.batch = batch
        self.state = ScanState()

    def partitions(self) -> int:
        """The partition count on the cluster; TopicMissing when the topic does not exist."""
        # Listing all topics, not naming this one: naming it would auto-create it on brokers
        # that allow that.
        have = existing_topics(admin_client(self.settings))
        if self.topic not in have:
            raise TopicMissing(
                f"topic {self.topic} does not exist on {self.settings.kafka.bootstrap_servers}"
            )
        return have[self.topic]

    def scan(self, progress: Progress | None = None) -> Iterator[DlqEntry]:
        """Every record up to the end seen at the start, in offset order per partition."""
        tps = [(self.topic, p) for p in range(self.partitions())]
        lows = list_offsets(admin_client(self.settings), tps, OffsetSpec.earliest())
        highs = end_offsets(self.settings.kafka, tps)
        self.state = state = ScanState(
            start={p: max(0, lows[(t, p)]) for t, p in tps}, end={p: highs[(t, p)] for t, p in tps}
        )
        pending = {p for p in state.start if state.end[p] > state.start[p]}
        if progress:
            progress(0, state.total)
        if not pending:
            return
        consumer = probe_consumer(
            self.settings.kafka,
            **{
                "enable.partition.eof": True,
                "fetch.max.bytes": 16 << 20,
                "max.partition.fetch.bytes": 4 << 20,
                "fetch.wait.max.ms": 200,
            },
        )
        try:
            consumer.assign(
                [TopicPartition(self.topic, p, state.start[p]) for p in sorted(pending)]
            )
            yield from self._drain(consumer, state, pending, progress)
        finally:
            consumer.close()

    def _drain(
        self, consumer, state: ScanState, pending: set[int], progress: Progress | None
    ) -> Iterator[DlqEntry]:
        last_progress = idle_since = time.monotonic()
        while pending:
            messages = consumer.consume(self.batch, timeout=0.5)
            for msg in messages:
                p = msg.partition()
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 — public code
                        self._finish(consumer, pending, p)  # at the end (last offsets may be gaps)
                        continue
                    raise BrokerUnavailable(
                        f"reading {self.topic}[{p}] failed: {msg.error().str()}"
                    )
                if p not in pending or msg.offset() >= state.end[p]:
                    self._finish(consumer, pending, p)
                    continue  # arrived after the scan began: not part of this answer
                state.read += 1
                ts_type, ts = msg.timestamp()
                yield DlqEntry.build(
                    self.topic,
                    p,
                    msg.offset(),
                    msg.key(),
                    msg.value(),
                    msg.headers(),
                    ts if ts_type else None,
                )
                if msg.offset() + 1 >= state.end[p]:
                    self._finish(consumer, pending, p)
            now = time.monotonic()
            if messages:
                idle_since = now
            elif now - idle_since > self.idle_timeout_s:
                state.incomplete = sorted(pending)
                log.warning(
                    "dlq scan stopped before the end of some partitions",
                    extra={"topic": self.topic, "partitions": state.incomplete},
                )
                break
            if progress and now - last_progress >= 0.5:
                progress(state.read, state.total)
                last_progress = now
        if progress:
            progress(state.read, state.total)

    def _finish(self, consumer, pending: set[int], partition: int) -> None:
        if partition in pending:
            pending.discard(partition)
            consumer.pause([TopicPartition(self.topic, partition)])  # stop fetching it
