"""Replaying DLQ records to the topic they failed at, and writing down who did it.

A replayed record is the original one: same key, same bytes (unless a JSON patch was
given), same headers minus the ``dlq.*`` failure headers, plus one ``mm.replay`` header
naming the replay and the DLQ record it came from. It goes to its source partition, so
changes of one entity stay in one partition and in DLQ order. Replays are safe to repeat:
every stage dedupes by stable event id and source version, so a second replay of the
same records changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from mmstream.dlq.entry import DlqEntry
from mmstream.dlq.format import PREFIX
from mmstream.kafka.producer import AckedProducer, Delivered, OutRecord
from mmstream.settings import Settings
from mmstream.topics import TopicCatalog
from stages.dlq.errors import ReplayRefused
from stages.dlq.payload import apply_patch
from stages.dlq.select import Selection

REPLAY_HEADER = "mm.replay"
AUDIT_ACTION = "dlq.replay"
_CHUNK = 1000
_SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class ReplayItem:
    """One DLQ record and the record that replays it."""

    entry: DlqEntry
    record: OutRecord
    patched: bool


@dataclass
class ReplayPlan:
    """What a replay publishes; built (and checked) in full before anything is sent."""

    replay_id: str
    dlq_topic: str
    selection: Selection
    items: list[ReplayItem] = field(default_factory=list)
    patch: list[dict[str, Any]] | None = None

    def destinations(self) -> dict[str, int]:
        """Destination topic -> records going there."""
        return dict(Counter(item.record.topic for item in self.items))

    def audit_details(
        self, published: Sequence[Delivered], outcome: str, error: str | None = None
    ) -> dict[str, Any]:
        """The ``ops_audit.details`` of this replay: before (DLQ records) and after
        (where they were written), the filters and the patch."""
        details: dict[str, Any] = {
            "replay_id": self.replay_id,
            "outcome": outcome,
            "selection": self.selection.describe() or {"all": True},
            "records": len(self.items),
            "patched": sum(item.patched for item in self.items),
            "patch": self.patch,
            "destinations": self.destinations(),
            "before": {
                "dlq_topic": self.dlq_topic,
                "offsets": offset_ranges((i.entry.partition, i.entry.offset) for i in self.items),
            },
            "after": {
                topic: offset_ranges((d.partition, d.offset) for d in published if d.topic == topic)
                for topic in sorted({d.topic for d in published})
            },
        }
        if error:
            details["error"] = error
        return details


def new_replay_id() -> str:
    """A fresh replay id (UUID4)."""
    return str(uuid.uuid4())


def replay_headers(entry: DlqEntry, replay_id: str, *, patched: bool) -> list[tuple[str, bytes]]:
    """The original headers without failure or earlier replay headers, plus this replay's."""
    kept = [(k, v) for k, v in entry.headers if not k.startswith(PREFIX) and k != REPLAY_HEADER]
    marker = {
        "id": replay_id,
        "dlq_topic": entry.topic,
        "dlq_partition": entry.partition,
        "dlq_offset": entry.offset,
        "patched": patched,
    }
    return [*kept, (REPLAY_HEADER, json.dumps(marker, separators=(",", ":")).encode())]


def build_plan(
    settings: Settings,
    catalog: TopicCatalog,
    cluster: dict[str, int],
    dlq_topic: str,
    entries: Iterable[DlqEntry],
    selection: Selection,
    *,
    patch: jsonpatch.JsonPatch | None = None,
    replay_id: str | None = None,
) -> ReplayPlan:
    """Check every selected record and build what would be published.

    ``cluster`` maps existing topic names to partition counts. Raises ReplayRefused (or
    PatchRefused) naming the first few records that cannot be replayed; nothing is sent.
    """
    plan = ReplayPlan(
        replay_id or new_replay_id(),
        dlq_topic,
        selection,
        patch=list(patch.patch) if patch is not None else None,
    )
    problems: list[str] = []
    for entry in entries:
        problem = _destination_problem(settings, catalog, cluster, entry)
        if problem:
            problems.append(f"{entry.coordinates}: {problem}")
            continue
        value = entry.value
        if patch is not None:
            value = apply_patch(patch, value, entry.headers, where=entry.coordinates)
        record = OutRecord(
            topic=entry.source_topic,
            value=value,
            key=entry.key,
            headers=replay_headers(entry, plan.replay_id, patched=patch is not None),
            partition=entry.source_partition,
        )
        plan.items.append(ReplayItem(entry, record, patched=patch is not None))
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = (
            f" (and {len(problems) - _SHOWN_PROBLEMS} more)"
            if len(problems) > _SHOWN_PROBLEMS
            else ""
        )
        raise ReplayRefused(f"{len(problems)} selected record(s) cannot be replayed: {shown}{more}")
    plan.items.sort(key=lambda i: (i.entry.partition, i.entry.offset))
    return plan


def _destination_problem(
    settings: Settings, catalog: TopicCatalog, cluster: dict[str, int], entry: DlqEntry
) -> str | None:
    topic, partition = entry.source_topic, entry.source_partition
    if entry.stage == "relay":
        # Its value is the stored change (the merged row), not the raw record its source
        # headers name: sent there, the normalizer would read the wrong thing.
        return (
            "a relay DLQ record holds the stored change, not the raw record: fix the cause, "
            "then let the relay publish the row again (UPDATE outbox SET published_at = NULL, "
            "headers = headers - 'mm.dead_letter' WHERE id = <its mm.outbox_id header>)"
        )
    if not topic or partition is None:
        return "no dlq.source.topic / dlq.source.partition header"
    prefix = settings.kafka.topic_prefix
    logical = topic[len(prefix) :] if topic.startswith(prefix) else None
    if logical is None or logical not in catalog.topics:
        # Never write to a topic this deployment does not declare (another environment's
        # prefix, a renamed topic): a replay must land where the pipeline reads.
        return (
            f"source topic {topic} is not a declared topic of this deployment (prefix {prefix!r})"
        )
    if catalog.topics[logical].role == "dlq":
        return f"source topic {topic} is itself a DLQ"
    if topic not in cluster:
        # Producing to a missing topic would auto-create it on some brokers (data unreadable).
        return f"source topic {topic} does not exist on the cluster; run `mmctl topics apply`"
    if not 0 <= partition < cluster[topic]:
        return f"source partition {partition} does not exist ({topic} has {cluster[topic]})"
    return None


async def publish(settings: Settings, plan: ReplayPlan, progress=None) -> list[Delivered]:
    """Send the plan with acks=all, in DLQ order; returns where each record landed."""
    producer = AckedProducer(settings.kafka, client_id=f"mm-dlq-replay-{plan.replay_id[:8]}")
    delivered: list[Delivered] = []
    try:
        for start in range(0, len(plan.items), _CHUNK):
            chunk = plan.items[start : start + _CHUNK]
            delivered += await producer.send_many([item.record for item in chunk])
            if progress:
                progress(len(delivered), len(plan.items))
    finally:
        producer.close()
    return delivered


def offset_ranges(coordinates: Iterable[tuple[int, int]]) -> dict[str, list[list[int]]]:
    """Partition -> inclusive [first, last] runs of consecutive offsets (compact for audit)."""
    per: dict[int, list[int]] = defaultdict(list)
    for partition, offset in coordinates:
        per[partition].append(offset)
    out: dict[str, list[list[int]]] = {}
    for partition in sorted(per):
        runs: list[list[int]] = []
        for offset in sorted(set(per[partition])):
            if runs and offset == runs[-1][1] + 1:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset])
        out[str(partition)] = runs
    return out
