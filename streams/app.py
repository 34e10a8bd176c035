"""Faust application factory with the broker settings that keep groups stable.

Faust is used for consumer-group membership, batching and offset tracking only: the state
lives in PostgreSQL, no Faust tables, no repartitioning, no topics declared by Faust.
"""

from __future__ import annotations

import tempfile

import faust

from mmstream.settings import Settings
from mmstream.topics import TopicCatalog


def create_app(settings: Settings, group: str) -> faust.App:
    """A Faust app whose id is the consumer group."""
    k = settings.kafka
    return faust.App(
        group,
        broker=[f"kafka://{hp}" for hp in k.bootstrap_servers.split(",")],
        value_serializer="raw",
        key_serializer="raw",
        processing_guarantee="at_least_once",
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=k.heartbeat_interval_s,
        broker_rebalance_timeout=k.rebalance_timeout_s,
        broker_commit_interval=k.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        store="memory://",
        datadir=tempfile.mkdtemp(prefix=f"faust-{group}-"),
    )


def source_topic(app: faust.App, settings: Settings, catalog: TopicCatalog, name: str):
    """A raw-bytes Faust topic for a declared topic (partition count from the topic file)."""
    return app.topic(
        settings.topic(name),
        partitions=catalog[name].partitions,
        value_serializer="raw",
        key_serializer="raw",
        allow_empty=True,
    )
