"""Offsets by record time: Kafka's offsets_for_times, checked against the records themselves.

Kafka answers ListOffsets(timestamp T) with the first offset whose record timestamp is >= T
(none: the end). The embedded broker answers 0 for every T (measured; see tests), and a
wrong reset offset is silent data loss or a flood of duplicates. So every broker answer O is
verified on the records next to it: record O must be >= T and record O-1 must be < T. Any
partition failing the check is found by scanning its records from the log start: exact
Kafka semantics, O(records) — acceptable because the only broker known to need it keeps
everything in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from mmstream.errors import BrokerUnavailable
from mmstream.kafka.lag import TP, list_offsets, probe_consumer
from mmstream.kafka.message import position
from mmstream.settings import KafkaSettings

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RecordStamp:
    """Offset and timestamp (ms since the epoch; -1 when the record has none) of one record."""

    offset: int
    timestamp_ms: int


def first_records(
    kafka: KafkaSettings, positions: dict[TP, int], ends: dict[TP, int], timeout_s: float = 15.0
) -> dict[TP, RecordStamp | None]:
    """The first record at or after each position; None where the position is at the end."""
    out: dict[TP, RecordStamp | None] = {
        tp: None for tp, pos in positions.items() if pos >= ends[tp]
    }
    wanted = {tp: pos for tp, pos in positions.items() if tp not in out}
    if not wanted:
        return out
    consumer = probe_consumer(kafka)
    try:
        consumer.assign([TopicPartition(t, p, pos) for (t, p), pos in wanted.items()])
        deadline = time.monotonic() + timeout_s
        while len(out) < len(positions):
            if time.monotonic() > deadline:
                missing = sorted(set(positions) - set(out))
                raise BrokerUnavailable(f"no records fetched within {timeout_s:.0f}s for {missing}")
            for msg in consumer.consume(500, timeout=0.2):
                if msg.error():
                    continue
                topic, partition, offset = position(msg)
                tp = (topic, partition)
                if tp in out or offset < wanted[tp]:
                    continue
                out[tp] = RecordStamp(offset, msg.timestamp()[1])
                consumer.pause([TopicPartition(topic, partition)])
        return out
    finally:
        consumer.close()


def _verified(
    kafka: KafkaSettings,
    candidates: dict[TP, int],
    starts: dict[TP, int],
    ends: dict[TP, int],
    ts_ms: int,
) -> set[TP]:
    """The partitions whose candidate offset is consistent with the records around it."""
    at = first_records(kafka, {tp: o for tp, o in candidates.items() if o < ends[tp]}, ends)
    before = first_records(
        kafka, {tp: o - 1 for tp, o in candidates.items() if o > starts[tp]}, ends
    )
    good = set()
    for tp, offset in candidates.items():
        rec = at.get(tp)
        if rec is not None and rec.timestamp_ms < ts_ms:
            continue
        prev = before.get(tp)
        # A gap (compaction) puts the next record here: only a record at O-1 itself counts.
        if prev is not None and prev.offset == offset - 1 and prev.timestamp_ms >= ts_ms:
            continue
        good.add(tp)
    return good


def scan_for_time(
    kafka: KafkaSettings,
    starts: dict[TP, int],
    ends: dict[TP, int],
    ts_ms: int,
    progress: Progress | None = None,
    timeout_s: float = 600.0,
) -> dict[TP, int]:
    """First offset with timestamp >= ``ts_ms`` per partition by reading from ``starts``;
    the end where there is none. ``progress`` gets the number of records read since its
    last call."""
    out = {tp: ends[tp] for tp in starts if starts[tp] >= ends[tp]}
    todo = {tp: s for tp, s in starts.items() if tp not in out}
    if not todo:
        return out
    consumer = probe_consumer(kafka, **{"max.partition.fetch.bytes": 1 << 20})
    try:
        consumer.assign([TopicPartition(t, p, s) for (t, p), s in todo.items()])
        deadline = time.monotonic() + timeout_s
        while len(out) < len(starts):
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"scanning for a timestamp took longer than {timeout_s:.0f}s"
                )
            batch = consumer.consume(5000, timeout=0.2)
            for msg in batch:
                if msg.error():
                    continue
                topic, partition, offset = position(msg)
                tp = (topic, partition)
                if tp in out:
                    continue
                if msg.timestamp()[1] >= ts_ms:
                    out[tp] = offset
                elif offset + 1 >= ends[tp]:
                    out[tp] = ends[tp]
                else:
                    continue
                consumer.pause([TopicPartition(topic, partition)])
            if progress and batch:
                progress(len(batch))
        return out
    finally:
        consumer.close()


@dataclass(frozen=True)
class TimeOffsets:
    """Offsets for a timestamp and which partitions needed the record scan."""

    offsets: dict[TP, int]
    scanned: frozenset[TP]


def offsets_for_time(
    kafka: KafkaSettings,
    admin: AdminClient,
    starts: dict[TP, int],
    ends: dict[TP, int],
    ts_ms: int,
    progress: Progress | None = None,
) -> TimeOffsets:
    """First offset with timestamp >= ``ts_ms`` for each partition of ``starts`` (the end
    where there is none): the broker's answer where the records confirm it, a scan elsewhere."""
    answered = list_offsets(admin, list(starts), OffsetSpec.for_timestamp(ts_ms))
    candidates = {
        tp: ends[tp] if o < 0 else min(max(o, starts[tp]), ends[tp]) for tp, o in answered.items()
    }
    good = _verified(kafka, candidates, starts, ends, ts_ms)
    bad = {tp: starts[tp] for tp in starts if tp not in good}
    scanned = scan_for_time(kafka, bad, ends, ts_ms, progress) if bad else {}
    return TimeOffsets({**{tp: candidates[tp] for tp in good}, **scanned}, frozenset(bad))
