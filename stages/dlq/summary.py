"""What a DLQ topic holds, counted by reason (stage, error code) and by entity."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mmstream.dlq.entry import DlqEntry


@dataclass
class ReasonCount:
    """Records of one (stage, error code) and how many distinct entities they concern."""

    stage: str
    code: str
    count: int
    entities: int
    error_class: str
    example: str  # the newest message, cut short: what the operator reads first


@dataclass
class TopicSummary:
    """Counts for one DLQ topic."""

    topic: str
    records: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    reasons: list[ReasonCount] = field(default_factory=list)
    entities: list[tuple[str, int]] = field(default_factory=list)
    distinct_entities: int = 0
    incomplete_partitions: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        """A JSON-ready form (times in ISO 8601)."""
        return {
            "topic": self.topic,
            "records": self.records,
            "oldest_failure": self.oldest.isoformat() if self.oldest else None,
            "newest_failure": self.newest.isoformat() if self.newest else None,
            "by_reason": [vars(r) for r in self.reasons],
            "distinct_entities": self.distinct_entities,
            "top_entities": [{"entity": e, "count": n} for e, n in self.entities],
            "incomplete_partitions": self.incomplete_partitions,
        }


def summarize(
    topic: str, entries: Iterable[DlqEntry], *, top: int = 10, message_chars: int = 120
) -> TopicSummary:
    """Count ``entries`` (one pass, memory bounded by distinct reasons and entities)."""
    out = TopicSummary(topic)
    per_reason: Counter[tuple[str, str]] = Counter()
    reason_entities: dict[tuple[str, str], set[str]] = defaultdict(set)
    reason_detail: dict[tuple[str, str], tuple[str, str]] = {}
    per_entity: Counter[str] = Counter()
    for entry in entries:
        out.records += 1
        reason = (entry.stage, entry.code)
        per_reason[reason] += 1
        reason_entities[reason].add(entry.entity)
        reason_detail[reason] = (
            entry.failure.get("error.class", ""),
            entry.failure.get("error.message", "")[:message_chars],
        )
        per_entity[entry.entity] += 1
        at = entry.failed_at
        if at is not None:
            out.oldest = at if out.oldest is None or at < out.oldest else out.oldest
            out.newest = at if out.newest is None or at > out.newest else out.newest
    out.reasons = [
        ReasonCount(
            stage, code, n, len(reason_entities[(stage, code)]), *reason_detail[(stage, code)]
        )
        for (stage, code), n in per_reason.most_common()
    ]
    out.entities = per_entity.most_common(top)
    out.distinct_entities = len(per_entity)
    return out
