"""End offsets and lag against the real (embedded) broker: right even where ListOffsets
is not."""

from __future__ import annotations

from confluent_kafka.admin import NewTopic, OffsetSpec

from mmstream.kafka.admin import admin_client
from mmstream.kafka.lag import (
    LagProbe,
    committed_offsets,
    end_offsets,
    list_offsets,
    partition_lag,
)
from tests.support.groups import commit, produce


def _topic(settings, name: str, partitions: int) -> str:
    topic = settings.topic(name)
    admin = admin_client(settings)
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    return topic


def test_end_offsets_count_every_record_across_batches(settings):
    topic = _topic(settings, "lag", 3)
    produce(settings, topic, {0: 30, 1: 1}, batches=3)  # partition 2 stays empty
    tps = [(topic, p) for p in range(3)]

    ends = end_offsets(settings.kafka, tps)

    assert ends == {(topic, 0): 30, (topic, 1): 1, (topic, 2): 0}
    # What the broker's ListOffsets says may be less (the embedded broker: 21 here); the
    # result above must not depend on it.
    latest = list_offsets(admin_client(settings), tps, OffsetSpec.latest())
    assert all(latest[tp] <= ends[tp] for tp in tps)


def test_committed_offsets_and_lag_of_a_real_group(settings, unique):
    topic = _topic(settings, "lag", 2)
    produce(settings, topic, {0: 12, 1: 4})
    group = f"g-{unique}"
    commit(settings, group, [topic], {(topic, 0): 5})

    done = committed_offsets(admin_client(settings), group)
    ends = end_offsets(settings.kafka, [(topic, 0), (topic, 1)])

    assert {tp: c.offset for tp, c in done.items()} == {(topic, 0): 5}
    assert partition_lag(done[(topic, 0)].offset, ends[(topic, 0)]) == 7
    assert partition_lag(None, ends[(topic, 1)]) is None


def test_lag_probe_sees_the_true_end_after_refresh(settings, unique):
    topic = _topic(settings, "lag", 1)
    produce(settings, topic, {0: 50}, batches=5)
    group = f"g-{unique}"
    commit(settings, group, [topic], {(topic, 0): 20})
    probe = LagProbe(settings.kafka, {topic: 1})
    try:
        for _ in range(100):
            probe.refresh()
            if probe.end_offsets()[(topic, 0)] >= 0:
                break
        assert probe.end_offsets() == {(topic, 0): 50}
        assert probe.lag(group, [topic]) == 30
    finally:
        probe.close()
