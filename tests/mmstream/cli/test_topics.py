"""``mmctl topics diff|apply`` against the real broker: create, drift, never delete unasked."""

from __future__ import annotations

from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from mmstream.kafka.admin import admin_client, existing_topics
from mmstream.topics import load_catalog


def _create(settings, name: str, partitions: int, configs: dict | None = None) -> str:
    topic, admin = settings.topic(name), admin_client(settings)  # keep the client alive
    admin.create_topics([NewTopic(topic, partitions, 1, config=configs or {})])[topic].result()
    return topic


def test_apply_creates_then_diff_is_clean(settings, mmctl):
    declared = len(load_catalog(settings.topics_file).topics)
    assert declared > 0
    first = mmctl.json("topics", "diff")
    assert len(first["create"]) == declared
    mmctl("topics", "diff", "--exit-code", expect=1)
    mmctl("topics", "apply")
    clean = mmctl.json("topics", "diff")
    assert clean["up_to_date"] == declared and not clean["create"] and not clean["configs"]
    mmctl("topics", "diff", "--exit-code")


def test_config_drift_is_reported_and_set_back(settings, mmctl):
    mmctl("topics", "apply")
    topic, admin = settings.topic("raw.onec.product"), admin_client(settings)
    admin.incremental_alter_configs(
        [
            ConfigResource(
                ResourceType.TOPIC,
                topic,
                incremental_configs=[
                    ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
                ],
            )
        ]
    )[ConfigResource(ResourceType.TOPIC, topic)].result()

    diff = mmctl.json("topics", "diff")
    assert diff["configs"] == [
        {"topic": topic, "key": "retention.ms", "have": "1000", "want": "604800000"}
    ]
    assert f"~ {topic} retention.ms: 1000 -> 604800000" in mmctl("topics", "diff").stdout
    mmctl("topics", "apply")
    assert mmctl.json("topics", "diff")["configs"] == []


def test_partition_drift_warns_about_key_order_and_is_never_shrunk(settings, mmctl):
    fewer = _create(
        settings, "raw.onec.product", 2, {"cleanup.policy": "delete", "retention.ms": "604800000"}
    )
    more = _create(
        settings, "raw.onec.warehouse", 8, {"cleanup.policy": "delete", "retention.ms": "604800000"}
    )
    out = mmctl("topics", "diff")
    assert f"^ {fewer} partitions 2 -> 6" in out.stdout
    assert "key" in out.stderr and "out of order" in out.stderr
    assert f"! {more} has 8 partitions, 6 declared" in out.stdout
    applied = mmctl.json("topics", "apply", "--no-increase")
    assert applied["increase_partitions"] == [{"topic": fewer, "have": 2, "want": 6}]
    counts = existing_topics(admin_client(settings))
    assert (counts[fewer], counts[more]) == (2, 8)


def test_undeclared_topics_are_deleted_only_when_allowed(settings, mmctl):
    mmctl("topics", "apply")
    legacy = _create(settings, "raw.onec.legacy", 1)
    foreign = _create(settings, "analytics.report", 1)  # not one of our namespaces
    assert mmctl.json("topics", "diff")["undeclared"] == [legacy]
    mmctl("topics", "apply")
    assert legacy in existing_topics(admin_client(settings))

    out = mmctl("topics", "apply", "--allow-delete").stdout
    assert f"- {legacy} is not in the topic file" in out
    have = existing_topics(admin_client(settings))
    assert legacy not in have and foreign in have
