"""Topic provisioning from topics.yaml (used at start-up and by `mmctl topics`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from mmstream.errors import BrokerUnavailable, TopicMissing
from mmstream.settings import Settings
from mmstream.topics import TopicCatalog, TopicSpec, effective_specs

log = logging.getLogger(__name__)


@dataclass
class TopicPlan:
    """What `topics apply` would do / did: topics to create, and drift it will not fix."""

    create: list[TopicSpec] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


def admin_client(settings: Settings) -> AdminClient:
    """An AdminClient with the project's connection settings."""
    return AdminClient({**settings.kafka.client_config(), "socket.timeout.ms": 10000})


def existing_topics(admin: AdminClient, timeout_s: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count. Lists all topics: naming one would auto-create it on
    brokers that allow that (the embedded one does)."""
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot list topics: {exc}") from exc
    return {name: len(t.partitions) for name, t in md.topics.items() if not t.error}


def plan(settings: Settings, catalog: TopicCatalog, admin: AdminClient) -> TopicPlan:
    """Compare the topic file with the cluster."""
    have = existing_topics(admin)
    result = TopicPlan()
    for spec in effective_specs(settings, catalog):
        if spec.name not in have:
            result.create.append(spec)
        elif have[spec.name] != spec.partitions:
            result.drift.append(
                f"{spec.name}: {have[spec.name]} partitions on the cluster, {spec.partitions} declared"
            )
        else:
            result.ok.append(spec.name)
    return result


def apply(settings: Settings, catalog: TopicCatalog, admin: AdminClient | None = None) -> TopicPlan:
    """Create every declared topic that is missing; report (never fix) partition drift."""
    admin = admin or admin_client(settings)
    result = plan(settings, catalog, admin)
    if result.create:
        futures = admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replication_factor, config=s.configs) for s in result.create],
            operation_timeout=30,
        )
        for name, fut in futures.items():
            try:
                fut.result()
                log.info("topic created", extra={"topic": name})
            except KafkaException as exc:
                if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                    raise BrokerUnavailable(f"cannot create topic {name}: {exc}") from exc
    for line in result.drift:
        log.warning("topic drift", extra={"detail": line})
    return result


def require_topics(settings: Settings, names: list[str], admin: AdminClient | None = None) -> None:
    """Raise TopicMissing unless every named (physical) topic exists."""
    have = existing_topics(admin or admin_client(settings))
    missing = [n for n in names if n not in have]
    if missing:
        raise TopicMissing(
            f"topics {missing} do not exist on {settings.kafka.bootstrap_servers}; "
            "run `mmctl topics apply` (the embedded stack does this at start-up)"
        )
