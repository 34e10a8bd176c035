"""`mmctl topics`: how diff / apply report a topic plan (pure: plan in, text or dict out),
and list / describe as kafka-topics.sh shows them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

from mmstream.errors import BrokerUnavailable
from mmstream.kafka.admin import TopicPlan, existing_topics


def plan_dict(p: TopicPlan) -> dict[str, Any]:
    """JSON-ready form of a plan."""
    return {
        "create": [
            {
                "topic": s.name,
                "partitions": s.partitions,
                "replication_factor": s.replication_factor,
                "configs": s.configs,
            }
            for s in p.create
        ],
        "increase_partitions": [{"topic": t, "have": h, "want": w} for t, h, w in p.grow],
        "cannot_shrink": [{"topic": t, "have": h, "want": w} for t, h, w in p.shrink],
        "configs": [
            {"topic": c.topic, "key": c.key, "have": c.have, "want": c.want} for c in p.configs
        ],
        "undeclared": p.undeclared,
        "up_to_date": len(p.ok),
    }


def plan_lines(p: TopicPlan, *, allow_delete: bool = False) -> list[str]:
    """``+`` create, ``^`` add partitions, ``~`` set config, ``!`` cannot fix, ``-`` delete
    (``?`` undeclared, kept without --allow-delete)."""
    out = [f"+ {s.name} partitions={s.partitions} rf={s.replication_factor}" for s in p.create]
    out += [f"^ {t} partitions {h} -> {w}" for t, h, w in p.grow]
    out += [
        f"~ {c.topic} {c.key}: {c.have if c.have is not None else '(unset)'} -> {c.want}"
        for c in p.configs
    ]
    out += [
        f"! {t} has {h} partitions, {w} declared: Kafka cannot shrink a topic"
        for t, h, w in p.shrink
    ]
    mark = "-" if allow_delete else "?"
    out += [
        f"{mark} {t} is not in the topic file"
        + ("" if allow_delete else " (kept; --allow-delete removes it)")
        for t in p.undeclared
    ]
    out.append(
        f"{len(p.ok)} up to date, {len(p.create)} to create, {len(p.grow)} to grow, "
        f"{len(p.configs)} config(s) to set, {len(p.shrink)} unfixable, {len(p.undeclared)} undeclared"
    )
    return out


def has_changes(p: TopicPlan) -> bool:
    """Whether the cluster differs from the file at all."""
    return bool(p.create or p.grow or p.shrink or p.configs or p.undeclared)


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as kafka-topics.sh --describe shows it (broker ids)."""

    partition: int
    leader: int | None
    replicas: list[int]
    isr: list[int]


@dataclass(frozen=True)
class TopicInfo:
    """One topic as kafka-topics.sh --describe shows it: the configs set on the topic
    (not the broker defaults) and its partitions."""

    name: str
    topic_id: str
    partitions: list[PartitionInfo]
    configs: dict[str, str]

    @property
    def replication_factor(self) -> int:
        """Replicas of the first partition (as the Kafka tool reports it)."""
        return len(self.partitions[0].replicas) if self.partitions else 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **asdict(self),
            "partition_count": len(self.partitions),
            "replication_factor": self.replication_factor,
        }


def list_names(admin: AdminClient, exclude_internal: bool = False) -> list[str]:
    """Every topic of the cluster, sorted (``__``-prefixed internal ones optionally left out)."""
    names = sorted(existing_topics(admin))
    return [n for n in names if not (exclude_internal and n.startswith("__"))]


def describe(admin: AdminClient, names: list[str], timeout_s: float = 10.0) -> list[TopicInfo]:
    """Partitions, replicas, ISR and topic-level configs of ``names`` (existing topics)."""
    if not names:
        return []
    try:
        topics = admin.describe_topics(TopicCollection(names), request_timeout=timeout_s)
        described = {name: fut.result() for name, fut in topics.items()}
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
        configs = {
            res.name: fut.result()
            for res, fut in admin.describe_configs(resources, request_timeout=timeout_s).items()
        }
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot describe topics {names}: {exc}") from exc
    out = []
    for name in names:
        d = described[name]
        set_here = {
            k: v.value
            for k, v in sorted(configs.get(name, {}).items())
            if v.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and v.value is not None
        }
        out.append(
            TopicInfo(
                name,
                str(d.topic_id) if d.topic_id is not None else "-",
                [
                    PartitionInfo(
                        p.id,
                        p.leader.id if p.leader is not None else None,
                        [r.id for r in p.replicas],
                        [r.id for r in p.isr],
                    )
                    for p in sorted(d.partitions, key=lambda p: p.id)
                ],
                set_here,
            )
        )
    return out


def describe_lines(topics: list[TopicInfo]) -> list[str]:
    """kafka-topics.sh --describe's layout: a tab-separated line per topic, then one per
    partition (indented by a tab)."""

    def ids(values: list[int]) -> str:
        return ",".join(map(str, values))

    out = []
    for t in topics:
        configs = ",".join(f"{k}={v}" for k, v in t.configs.items())
        out.append(
            f"Topic: {t.name}\tTopicId: {t.topic_id}\tPartitionCount: {len(t.partitions)}\t"
            f"ReplicationFactor: {t.replication_factor}\tConfigs: {configs}"
        )
        out += [
            f"\tTopic: {t.name}\tPartition: {p.partition}\t"
            f"Leader: {p.leader if p.leader is not None else 'none'}\t"
            f"Replicas: {ids(p.replicas)}\tIsr: {ids(p.isr)}"
            for p in t.partitions
        ]
    return out
