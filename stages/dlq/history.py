"""Replays in the operations audit trail (``ops_audit``, action ``dlq.replay``)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence

from sqlalchemy import Engine

from mmstream import audit
from mmstream.kafka.producer import Delivered
from stages.dlq.replay import AUDIT_ACTION, ReplayPlan

_LOOKBACK = 1000  # replays of one DLQ topic checked for overlap with a new one


def record_replay(
    engine: Engine,
    actor: str,
    plan: ReplayPlan,
    published: Sequence[Delivered],
    *,
    outcome: str = "published",
    error: str | None = None,
) -> int:
    """Append the audit row of an executed (or failed part-way) replay; returns its id."""
    return audit.record_sync(
        engine, actor, AUDIT_ACTION, plan.dlq_topic, plan.audit_details(published, outcome, error)
    )


def past_replays(
    engine: Engine, dlq_topic: str | None = None, limit: int = 50
) -> list[audit.AuditEntry]:
    """The newest replays first, of one DLQ topic or of all."""
    return audit.recent_sync(engine, target=dlq_topic, action=AUDIT_ACTION, limit=limit)


def earlier_replays_of(engine: Engine, plan: ReplayPlan) -> dict[str, int]:
    """Replay id -> how many records of ``plan`` that earlier replay already published.

    Informative only: replaying again is harmless (the pipeline dedupes), but an operator
    should know it is a repeat.
    """
    offsets: dict[str, list[int]] = defaultdict(list)
    for item in plan.items:
        offsets[str(item.entry.partition)].append(item.entry.offset)
    for mine in offsets.values():
        mine.sort()
    hits: Counter[str] = Counter()
    for row in past_replays(engine, plan.dlq_topic, limit=_LOOKBACK):
        ranges = (row.details.get("before") or {}).get("offsets") or {}
        for partition, runs in ranges.items():
            mine = offsets.get(partition, [])
            for lo, hi in runs:  # runs do not overlap (offset_ranges), so no double count
                n = bisect_right(mine, hi) - bisect_left(mine, lo)
                if n:
                    hits[str(row.details.get("replay_id", row.id))] += n
    return dict(hits)
