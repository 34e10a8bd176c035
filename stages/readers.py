"""Which worker reads which declared topic: the check behind design invariant 10.

Every topic the bridge or a stage writes for a worker to consume (role ``raw`` or ``egress``
in topics.yaml) must have a reader here, or a record acknowledged into it would be lost
silently. Every worker runs :func:`require_readers` before it starts, so a topic file that
declares a topic nothing consumes stops a deployment instead of filling the topic unseen.
(Normalized topics are read by analysts, DLQs by `mmctl dlq`, `events.*` by the back office.)
"""

from __future__ import annotations

from mmstream.errors import ConfigurationError
from mmstream.topics import TopicCatalog

#: Roles whose records a worker of ours must consume.
CONSUMED_ROLES = ("raw", "egress")
#: The enrichment worker's topics (stages/enrich/worker.py EVENT_TOPIC); every other raw
#: topic, products included, is the entity sink's (its normalizers' TOPICS).
ENRICHMENT = ("raw.bitrix24.event",)


def readers(catalog: TopicCatalog) -> dict[str, str]:
    """Declared topic -> the worker (``mmctl worker`` role) that consumes it."""
    from stages.egress.actions import ACTIONS
    from stages.sink.entity_worker import raw_topics

    out = {name: "enrich-bitrix24" for name in ENRICHMENT}
    out.update({name: "sink-entities" for name in raw_topics(catalog)})
    out.update({name: "egress" for name in ACTIONS})
    return {name: role for name, role in out.items() if name in catalog.topics}


def unread(catalog: TopicCatalog) -> list[str]:
    """Declared raw/egress topics no worker consumes (sorted)."""
    read = readers(catalog)
    return sorted(
        name
        for name, spec in catalog.topics.items()
        if spec.role in CONSUMED_ROLES and name not in read
    )


def require_readers(catalog: TopicCatalog) -> None:
    """ConfigurationError when a declared raw/egress topic has no reader."""
    missing = unread(catalog)
    if missing:
        raise ConfigurationError(
            f"topics.yaml declares {', '.join(missing)}, but no worker consumes them: records "
            "written there would be lost. Add a normalizer/action for them or remove them "
            "from the topic file"
        )
