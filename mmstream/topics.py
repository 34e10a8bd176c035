"""The declarative topic file (topics.yaml): loading, validation and physical names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mmstream.errors import ConfigurationError
from mmstream.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    """One topic as declared: its logical name, partitions, replication and configs."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)
    role: str = ""
    entity: str = ""
    key: str = ""
    value_format: str = ""
    description: str = ""
    schema: str | None = None


@dataclass(frozen=True)
class TopicCatalog:
    """All declared topics, validated: co-partitioned groups share a partition count."""

    topics: dict[str, TopicSpec]
    copartition_groups: dict[str, list[str]]

    def __getitem__(self, name: str) -> TopicSpec:
        try:
            return self.topics[name]
        except KeyError:
            raise ConfigurationError(f"topic {name!r} is not declared in topics.yaml") from None


def _positive_int(value: object, what: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, str))
        or not str(value).isdigit()
        or int(value) < 1
    ):
        raise ConfigurationError(f"{what} must be a whole number of at least 1 (got {value!r})")
    return int(value)


def load_catalog(path: Path) -> TopicCatalog:
    """Parse and validate a topic file; raise ConfigurationError naming what is wrong."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read topic file {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("topics"), dict):
        raise ConfigurationError(f"topic file {path} must be a mapping with a 'topics' mapping")
    defaults = doc.get("defaults") or {}
    default_rf = _positive_int(
        defaults.get("replication_factor", 1), f"defaults.replication_factor in {path}"
    )
    default_configs = {k: str(v) for k, v in (defaults.get("configs") or {}).items()}
    topics: dict[str, TopicSpec] = {}
    for name, spec in doc["topics"].items():
        if not isinstance(spec, dict) or "partitions" not in spec:
            raise ConfigurationError(f"topic {name!r} in {path} has no partition count")
        topics[name] = TopicSpec(
            name=name,
            partitions=_positive_int(spec["partitions"], f"partitions of topic {name!r} in {path}"),
            replication_factor=_positive_int(
                spec.get("replication_factor", default_rf),
                f"replication_factor of topic {name!r} in {path}",
            ),
            configs={
                **default_configs,
                **{k: str(v) for k, v in (spec.get("configs") or {}).items()},
            },
            role=spec.get("role", ""),
            entity=spec.get("entity", ""),
            key=spec.get("key", ""),
            value_format=spec.get("value_format", ""),
            description=spec.get("description", ""),
            schema=spec.get("schema"),
        )
    groups = {g: list(members) for g, members in (doc.get("copartition_groups") or {}).items()}
    for group, members in groups.items():
        unknown = [m for m in members if m not in topics]
        if unknown:
            raise ConfigurationError(
                f"co-partition group {group!r} names undeclared topics {unknown}"
            )
        counts = {topics[m].partitions for m in members}
        if len(counts) != 1:
            raise ConfigurationError(
                f"co-partition group {group!r} mixes partition counts {sorted(counts)}: "
                "all topics of one entity's path must have the same count"
            )
    return TopicCatalog(topics=topics, copartition_groups=groups)


def effective_specs(settings: Settings, catalog: TopicCatalog) -> list[TopicSpec]:
    """The specs as they should exist on the cluster: prefixed names, RF override applied."""
    rf = settings.kafka.replication_factor
    out = []
    for spec in catalog.topics.values():
        configs = dict(spec.configs)
        replication = rf or spec.replication_factor
        if replication < int(configs.get("min.insync.replicas", "1")):
            configs["min.insync.replicas"] = str(replication)
        out.append(
            TopicSpec(
                **{
                    **spec.__dict__,
                    "name": settings.topic(spec.name),
                    "replication_factor": replication,
                    "configs": configs,
                }
            )
        )
    return out
