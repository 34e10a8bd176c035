"""Scanning a DLQ topic on the real broker: bounded by the end seen at the start, no group."""

from __future__ import annotations

import pytest

from mmstream.dlq.reader import DlqReader
from mmstream.errors import TopicMissing
from mmstream.kafka.admin import admin_client, existing_topics
from tests.stages.dlq.conftest import parked, produce


def test_a_scan_reads_every_partition_to_its_end_in_offset_order(topics):
    settings = topics
    records = [
        parked(settings, partition=p, offset=100 + i, key=f"k{p}-{i}")
        for p, n in ((0, 3), (3, 1), (5, 3))
        for i in range(n)
    ]
    produce(settings, records)
    seen: list[tuple[int, int | None]] = []
    reader = DlqReader(settings, settings.topic("dlq.normalize"))
    entries = list(reader.scan(lambda done, total: seen.append((done, total))))

    assert sorted(e.entity for e in entries) == sorted(r.key.decode() for r in records)
    for p in (0, 3, 5):
        offsets = [e.offset for e in entries if e.partition == p]
        assert offsets == sorted(offsets) and offsets == list(range(len(offsets)))
    assert reader.state.total == 7 and reader.state.incomplete == []
    assert seen[-1] == (7, 7)
    first = next(e for e in entries if e.entity == "k0-0")
    assert first.stage == "sink" and first.code == "invalid_record"
    assert first.source_topic == settings.topic("raw.onec.product")
    assert (first.source_partition, first.source_offset) == (0, 100)
    assert first.value == records[0].value
    assert ("ce_id", b"k0-0") in first.headers


def test_records_arriving_during_a_scan_are_left_for_the_next_one(topics):
    settings = topics
    produce(settings, [parked(settings, partition=1, offset=i, key=f"a{i}") for i in range(3)])
    reader = DlqReader(settings, settings.topic("dlq.normalize"))
    scan = reader.scan()
    got = [next(scan)]
    produce(settings, [parked(settings, partition=1, offset=10 + i, key=f"b{i}") for i in range(2)])
    got += list(scan)
    assert [e.entity for e in got] == ["a0", "a1", "a2"]
    assert [e.entity for e in DlqReader(settings, settings.topic("dlq.normalize")).scan()] == [
        "a0",
        "a1",
        "a2",
        "b0",
        "b1",
    ]


def test_an_empty_dlq_scan_ends_with_nothing(topics):
    reader = DlqReader(topics, topics.topic("dlq.egress.bitrix24.product"))
    assert list(reader.scan()) == []
    assert reader.state.total == 0 and reader.state.incomplete == []


def test_a_missing_topic_is_reported_and_not_created(settings, unique):
    name = f"t{unique}.dlq.not-there"
    with pytest.raises(TopicMissing):
        list(DlqReader(settings, name).scan())
    assert name not in existing_topics(admin_client(settings))
