"""Offsets by record time against the real broker, whatever its ListOffsets(timestamp) says."""

from __future__ import annotations

from confluent_kafka.admin import NewTopic

from mmstream.kafka.admin import admin_client
from mmstream.kafka.lag import end_offsets
from mmstream.ops.timeindex import first_records, offsets_for_time
from tests.support.groups import BASE_TS_MS, produce


def _setup(settings, ts_of):
    topic = settings.topic("times")
    admin = admin_client(settings)
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()
    produce(settings, topic, {0: 30, 1: 1}, ts_of=ts_of)
    tps = [(topic, p) for p in range(3)]
    return topic, admin, {tp: 0 for tp in tps}, end_offsets(settings.kafka, tps)


def test_first_offset_at_or_after_a_time(settings):
    topic, admin, starts, ends = _setup(settings, lambda p, i: BASE_TS_MS + i * 1000)
    found = []
    result = offsets_for_time(
        settings.kafka, admin, starts, ends, BASE_TS_MS + 15_500, found.append
    )
    # p0: record 16 is the first at 16 s; p1: its only record is older -> end; p2: empty.
    assert result.offsets == {(topic, 0): 16, (topic, 1): 1, (topic, 2): 0}


def test_before_everything_and_after_everything(settings):
    topic, admin, starts, ends = _setup(settings, lambda p, i: BASE_TS_MS + i * 1000)
    early = offsets_for_time(settings.kafka, admin, starts, ends, BASE_TS_MS - 1)
    late = offsets_for_time(settings.kafka, admin, starts, ends, BASE_TS_MS + 10**9)
    assert early.offsets == {(topic, 0): 0, (topic, 1): 0, (topic, 2): 0}
    assert late.offsets == {(topic, 0): 30, (topic, 1): 1, (topic, 2): 0}


def test_timestamps_out_of_order_follow_kafka_semantics(settings):
    # Record 3 carries a late clock: the first record at/after 5 s is offset 3, not 5.
    stamps = {3: 10_000}
    topic, admin, starts, ends = _setup(
        settings, lambda p, i: BASE_TS_MS + stamps.get(i, i * 1000) if p == 0 else BASE_TS_MS
    )
    result = offsets_for_time(settings.kafka, admin, starts, ends, BASE_TS_MS + 5000)
    assert result.offsets[(topic, 0)] == 3


def test_first_records_reads_the_record_at_a_position(settings):
    topic, _admin, _starts, ends = _setup(settings, lambda p, i: BASE_TS_MS + i * 1000)
    got = first_records(settings.kafka, {(topic, 0): 7, (topic, 2): 0}, ends)
    assert got[(topic, 0)].offset == 7 and got[(topic, 0)].timestamp_ms == BASE_TS_MS + 7000
    assert got[(topic, 2)] is None
