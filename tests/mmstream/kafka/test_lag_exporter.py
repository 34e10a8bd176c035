"""The per-worker lag exporter on the real broker: the gauges it sets per partition and the
group and topics it finds in a Faust app."""

from __future__ import annotations

import asyncio

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import REGISTRY

from mmstream.kafka.admin import apply
from mmstream.kafka.lag_exporter import LagExporter
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.topics import load_catalog
from tests.support.processes import eventually


def _produce(settings, topic: str, counts: dict[int, int]) -> None:
    async def main():
        producer = AckedProducer(settings.kafka, client_id="test-lag")
        try:
            await producer.send_many(
                [
                    OutRecord(topic, b"{}", f"k{p}-{i}".encode(), [], p)
                    for p, n in counts.items()
                    for i in range(n)
                ]
            )
        finally:
            producer.close()

    asyncio.run(main())


def _commit(settings, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit as a member of ``group`` would (a consumer that never joins: no rebalance)."""
    consumer = Consumer(
        {**settings.kafka.client_config(), "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def test_lag_per_partition_is_end_minus_committed(settings):
    apply(settings, load_catalog(settings.topics_file))
    topic, group = settings.topic("raw.onec.product"), settings.streams.entity_sink_group
    _produce(settings, topic, {0: 3, 1: 2, 2: 4})
    _commit(settings, group, topic, {0: 2, 2: 4})  # partition 1: nothing committed yet
    exporter = LagExporter(settings.kafka, group, {topic: 6})
    try:
        # Watermarks arrive with fetch responses: poll until the produced ones are seen.
        lags = eventually(
            lambda: (lambda lag: lag if lag.get((topic, 2)) == 0 and lag.get((topic, 1)) else None)(
                exporter.update()
            ),
            60,
            message="lag computed",
        )
    finally:
        exporter.stop()
        if exporter._probe is not None:  # noqa: SLF001 — update() ran outside the thread
            exporter._probe.close()  # noqa: SLF001
    assert lags[(topic, 0)] == 1 and lags[(topic, 1)] == 2 and lags[(topic, 2)] == 0
    assert lags[(topic, 3)] == 0  # an empty partition has no lag
    assert (
        REGISTRY.get_sample_value(
            "mm_consumer_lag", {"group": group, "topic": topic, "partition": "1"}
        )
        == 2
    )
    assert (
        REGISTRY.get_sample_value("mm_consumer_lag_updated_timestamp_seconds", {"group": group}) > 0
    )


def test_background_thread_keeps_the_gauges_current(settings):
    apply(settings, load_catalog(settings.topics_file))
    topic, group = settings.topic("egress.bitrix24.product"), settings.streams.egress_group
    _produce(settings, topic, {4: 5})
    exporter = LagExporter(settings.kafka, group, {topic: 6}, interval_s=0.2).start()
    try:
        eventually(
            lambda: (
                REGISTRY.get_sample_value(
                    "mm_consumer_lag", {"group": group, "topic": topic, "partition": "4"}
                )
                == 5
            ),
            60,
            message="lag 5 exported",
        )
        _commit(settings, group, topic, {4: 5})
        eventually(
            lambda: (
                REGISTRY.get_sample_value(
                    "mm_consumer_lag", {"group": group, "topic": topic, "partition": "4"}
                )
                == 0
            ),
            60,
            message="lag 0 after the commit",
        )
    finally:
        exporter.stop()


def test_for_app_takes_the_group_and_the_agents_topics(settings):
    from stages.egress.actions import ACTIONS
    from stages.sink.entity_worker import build_entity_sink
    from stages.worker import build_egress

    sink = LagExporter.for_app(build_entity_sink(settings), settings)
    assert sink.group == settings.streams.entity_sink_group
    # The one sink reads products too: 1С changes and the Bitrix24 echoes of what egress wrote.
    assert sink.partitions[settings.topic("raw.onec.product")] == 6
    assert sink.partitions[settings.topic("raw.bitrix24.product")] == 6
    egress = LagExporter.for_app(build_egress(settings), settings)
    assert egress.group == settings.streams.egress_group
    # One agent per egress topic that has an action (each declared with 6 partitions).
    catalog = load_catalog(settings.topics_file)
    assert settings.topic("egress.bitrix24.product") in egress.partitions
    assert egress.partitions == {
        settings.topic(name): catalog[name].partitions for name in ACTIONS if name in catalog.topics
    }
