"""Topic provisioning from topics.yaml (used at start-up and by `mmctl topics`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from mmstream.errors import BrokerUnavailable, TopicMissing
from mmstream.settings import Settings
from mmstream.topics import TopicCatalog, TopicSpec, effective_specs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigDrift:
    """A declared topic config whose value on the cluster differs (None: not set there)."""

    topic: str
    key: str
    have: str | None
    want: str


@dataclass
class TopicPlan:
    """What `topics apply` would do / did.

    ``grow``: (topic, have, want) partition increases; ``shrink``: declared below the
    cluster (Kafka cannot shrink: reported only); ``configs``: declared configs that differ;
    ``undeclared``: topics in our namespaces that the file does not declare (deleted only
    with ``allow_delete``). ``drift`` has all of it as human lines.
    """

    create: list[TopicSpec] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    grow: list[tuple[str, int, int]] = field(default_factory=list)
    shrink: list[tuple[str, int, int]] = field(default_factory=list)
    configs: list[ConfigDrift] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)

    @property
    def drift(self) -> list[str]:
        """Every difference `apply` does not simply create, one line each."""
        return [
            *(
                f"{t}: {h} partitions on the cluster, {w} declared (increase; changes which "
                "partition a key maps to)"
                for t, h, w in self.grow
            ),
            *(
                f"{t}: {h} partitions on the cluster, {w} declared (Kafka cannot shrink a topic: "
                "recreate it or fix the file)"
                for t, h, w in self.shrink
            ),
            *(
                f"{c.topic}: {c.key}={c.have if c.have is not None else '(unset)'} on the cluster, "
                f"{c.want} declared"
                for c in self.configs
            ),
            *(f"{t}: on the cluster, not in the topic file" for t in self.undeclared),
        ]


#: Said before any partition increase, by the CLI and the log.
KEY_ORDER_WARNING = (
    "adding partitions changes the partition of most keys: records of one key written before "
    "and after the change can be processed out of order, and co-partitioned topics must grow "
    "together. Drain the consumers (lag 0) and stop producers first if order matters."
)


def admin_client(settings: Settings) -> AdminClient:
    """An AdminClient with the project's connection settings."""
    return AdminClient(
        {**settings.kafka.client_config(), "socket.timeout.ms": 10000},
        logger=logging.getLogger("librdkafka"),
    )


def existing_topics(admin: AdminClient, timeout_s: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count. Lists all topics: naming one would auto-create it on
    brokers that allow that (the embedded one does)."""
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot list topics: {exc}") from exc
    return {name: len(t.partitions) for name, t in md.topics.items() if not t.error}


def topic_configs(
    admin: AdminClient, names: list[str], timeout_s: float = 10.0
) -> dict[str, dict[str, str]]:
    """Topic -> config key -> value as the cluster reports it."""
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    try:
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
        return {
            res.name: {k: v.value for k, v in fut.result().items()} for res, fut in futures.items()
        }
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot describe topic configs: {exc}") from exc


def _undeclared(settings: Settings, declared: set[str], have: dict[str, int]) -> list[str]:
    # Only our namespaces (prefix + a first name segment the file uses, e.g. "raw."): on a
    # shared cluster, other teams' topics, internal ones and Faust's own are never candidates.
    prefix = settings.kafka.topic_prefix
    families = {name[len(prefix) :].split(".", 1)[0] + "." for name in declared}
    return sorted(
        name
        for name in have
        if name not in declared
        and name.startswith(prefix)
        and not name.startswith("_")
        and any(name[len(prefix) :].startswith(f) for f in families)
    )


def plan(settings: Settings, catalog: TopicCatalog, admin: AdminClient) -> TopicPlan:
    """Compare the topic file with the cluster: missing topics, partitions, configs, extras."""
    have = existing_topics(admin)
    specs = effective_specs(settings, catalog)
    result = TopicPlan()
    present = [s for s in specs if s.name in have]
    configs = topic_configs(admin, [s.name for s in present])
    for spec in specs:
        if spec.name not in have:
            result.create.append(spec)
            continue
        clean = True
        if have[spec.name] < spec.partitions:
            result.grow.append((spec.name, have[spec.name], spec.partitions))
            clean = False
        elif have[spec.name] > spec.partitions:
            result.shrink.append((spec.name, have[spec.name], spec.partitions))
            clean = False
        for key, want in sorted(spec.configs.items()):
            got = configs.get(spec.name, {}).get(key)
            if got != want:
                result.configs.append(ConfigDrift(spec.name, key, got, want))
                clean = False
        if clean:
            result.ok.append(spec.name)
    result.undeclared = _undeclared(settings, {s.name for s in specs}, have)
    return result


def _wait(futures: dict, what: str, tolerate: tuple[int, ...] = ()) -> None:
    for name, fut in futures.items():
        try:
            fut.result()
            log.info(f"{what} done", extra={"topic": str(name)})
        except KafkaException as exc:
            if exc.args[0].code() not in tolerate:
                raise BrokerUnavailable(f"cannot {what} {name}: {exc}") from exc


def apply(
    settings: Settings,
    catalog: TopicCatalog,
    admin: AdminClient | None = None,
    *,
    increase_partitions: bool = False,
    update_configs: bool = False,
    allow_delete: bool = False,
) -> TopicPlan:
    """Create every declared topic that is missing; optionally grow partitions, set drifted
    configs to the declared values, and delete undeclared topics. Returns the plan it acted
    on; whatever it was not allowed to fix stays reported in ``drift``."""
    admin = admin or admin_client(settings)
    result = plan(settings, catalog, admin)
    if result.create:
        _wait(
            admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, s.replication_factor, config=s.configs)
                    for s in result.create
                ],
                operation_timeout=30,
            ),
            "create topic",
            (KafkaError.TOPIC_ALREADY_EXISTS,),
        )
    if increase_partitions and result.grow:
        log.warning(
            "increasing partitions",
            extra={"topics": [g[0] for g in result.grow], "detail": KEY_ORDER_WARNING},
        )
        _wait(
            admin.create_partitions(
                [NewPartitions(t, w) for t, _, w in result.grow], operation_timeout=30
            ),
            "increase partitions of",
        )
    if update_configs and result.configs:
        by_topic: dict[str, list[ConfigEntry]] = {}
        for c in result.configs:
            by_topic.setdefault(c.topic, []).append(
                ConfigEntry(c.key, c.want, incremental_operation=AlterConfigOpType.SET)
            )
        _wait(
            admin.incremental_alter_configs(
                [
                    ConfigResource(ResourceType.TOPIC, t, incremental_configs=e)
                    for t, e in by_topic.items()
                ]
            ),
            "set configs of",
        )
    if allow_delete and result.undeclared:
        log.warning("deleting undeclared topics", extra={"topics": result.undeclared})
        _wait(admin.delete_topics(result.undeclared, operation_timeout=30), "delete topic")
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
