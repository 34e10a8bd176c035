"""Faust application factory with the broker settings that keep groups stable.

Faust is used for consumer-group membership, batching and offset tracking only: the state
lives in PostgreSQL, no Faust tables, no repartitioning, no topics declared by Faust.
"""

from __future__ import annotations

import logging
import tempfile

import faust

from mmstream.settings import Settings
from mmstream.topics import TopicCatalog


class App(faust.App):
    """faust.App that lets a rebalance during shutdown finish instead of wedging the worker.

    faust-streaming (0.15.3, pinned) reacts to a rebalance that arrives while the app is stopping
    by ``consumer.close()``, which marks the aiokafka consumer closed (so the orderly
    ``stop()`` on the consumer thread becomes a no-op) and schedules the client's and the
    coordinator's close on the main event loop instead of the consumer thread's. The client
    is closed first, the coordinator never finishes, and its heartbeat task spins on
    GroupCoordinatorNotAvailable forever: the worker never exits on SIGTERM and stays in
    the group until it is killed. That happens whenever a member stops while another one
    joins (a rolling deploy). Ignoring the rebalance here leaves the shutdown to the normal
    path: the consumer thread stops aiokafka, which finishes the join, leaves the group and
    closes its connections.
    """

    # Under "faust" like faust.App's own logger, so the same levels apply (mode would name
    # a subclass's logger after its module, stages.app, and let INFO through).
    logger = logging.getLogger("faust.app.mmstream")

    def _on_rebalance_when_stopped(self) -> None:
        # Nothing to do: the agents are stopping and commit what they acknowledged; the
        # consumer thread's stop closes aiokafka in order (see the class docstring).
        return None


def create_app(settings: Settings, group: str) -> faust.App:
    """A Faust app whose id is the consumer group."""
    k = settings.kafka
    return App(
        group,
        broker=[f"kafka://{hp}" for hp in k.bootstrap_servers.split(",")],
        # TLS and SASL of the one security section (settings.KafkaSettings): Faust hands
        # them to every aiokafka consumer, producer and admin client it makes.
        broker_credentials=k.faust_credentials(),
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
