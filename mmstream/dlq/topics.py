"""The DLQ topics of this deployment, as declared in topics.yaml (``role: dlq``)."""

from __future__ import annotations

from mmstream.errors import ConfigurationError
from mmstream.settings import Settings
from mmstream.topics import TopicCatalog


def dlq_topics(settings: Settings, catalog: TopicCatalog) -> list[str]:
    """Physical names of every declared DLQ topic, in file order."""
    return [settings.topic(name) for name, spec in catalog.topics.items() if spec.role == "dlq"]


def resolve(settings: Settings, catalog: TopicCatalog, name: str) -> str:
    """The physical DLQ topic an operator means by ``name`` (logical or physical)."""
    prefix = settings.kafka.topic_prefix
    logical = name[len(prefix) :] if prefix and name.startswith(prefix) else name
    spec = catalog.topics.get(logical)
    if spec is None or spec.role != "dlq":
        known = ", ".join(n for n, s in catalog.topics.items() if s.role == "dlq")
        raise ConfigurationError(
            f"{name!r} is not a DLQ topic of topics.yaml (DLQ topics: {known})"
        )
    return settings.topic(logical)
