"""What the operator commands report: plain data, no I/O, JSON-ready through ``as_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Kafka group states in which members hold (or are being given) partitions.
ACTIVE_STATES = frozenset({"STABLE", "PREPARING_REBALANCE", "COMPLETING_REBALANCE"})


@dataclass(frozen=True)
class Member:
    """One live member of a consumer group and the partitions assigned to it."""

    member_id: str
    client_id: str
    host: str
    partitions: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class PartitionState:
    """A group's position on one partition.

    ``newest_committed_record_age_s`` is the age of the last record the group committed
    past (offset committed-1). The commit came after that record was written, so it is an
    upper bound on the time since the last commit that moved this partition (when the
    producer's clock is right). ``commit_metadata`` is whatever the committer stored (Kafka
    keeps it; the embedded broker drops it).
    """

    topic: str
    partition: int
    entity: str
    committed: int | None
    end: int
    lag: int | None
    owner: str | None = None
    commit_metadata: str | None = None
    newest_committed_record_age_s: float | None = None
    # The owning member as kafka-consumer-groups.sh names it (CONSUMER-ID, HOST; ``owner``
    # is its CLIENT-ID).
    consumer_id: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class GroupView:
    """Everything `groups describe` shows about one group."""

    group: str
    state: str
    members: list[Member]
    partitions: list[PartitionState]

    @property
    def active(self) -> bool:
        """Members hold partitions: offsets must not be changed under them."""
        return bool(self.members) or self.state in ACTIVE_STATES

    @property
    def total_lag(self) -> int:
        """Records committed by no one, over the partitions the group has committed on."""
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def lag_by_entity(self) -> dict[str, int]:
        """Lag summed per entity type of the topic file (``(undeclared)`` for other topics)."""
        out: dict[str, int] = {}
        for p in self.partitions:
            out[p.entity] = out.get(p.entity, 0) + (p.lag or 0)
        return dict(sorted(out.items()))

    @property
    def last_commit_at_most_s(self) -> float | None:
        """Upper bound on the time since the group's most recent offset-moving commit."""
        ages = [
            p.newest_committed_record_age_s
            for p in self.partitions
            if p.newest_committed_record_age_s is not None
        ]
        return min(ages) if ages else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, derived figures included."""
        return {
            "group": self.group,
            "state": self.state,
            "active": self.active,
            "members": [asdict(m) for m in self.members],
            "partitions": [asdict(p) for p in self.partitions],
            "total_lag": self.total_lag,
            "lag_by_entity": self.lag_by_entity,
            "last_commit_at_most_s": self.last_commit_at_most_s,
        }


@dataclass(frozen=True)
class GroupSummary:
    """One line of `groups list`."""

    group: str
    state: str
    members: int
    topics: list[str]
    total_lag: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class ResetRow:
    """One partition of an offset reset: where the group is and where it will be."""

    topic: str
    partition: int
    before: int | None
    after: int
    note: str = ""


@dataclass(frozen=True)
class ResetPlan:
    """The preview of `groups reset`, and what `--execute` applies: one group, one or more
    topics (``rows`` in topic, partition order)."""

    group: str
    topics: list[str]
    how: str
    rows: list[ResetRow]

    @property
    def topic(self) -> str | None:
        """The topic when the plan covers exactly one."""
        return self.topics[0] if len(self.topics) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the audit record's details). ``before``/``after`` are keyed
        by partition for a one-topic plan (as before multi-topic resets) and by
        ``TOPIC:PARTITION`` otherwise; ``rows`` is the same in every case."""

        def key(r: ResetRow) -> str:
            return str(r.partition) if self.topic is not None else f"{r.topic}:{r.partition}"

        return {
            "group": self.group,
            "topic": self.topic,
            "topics": self.topics,
            "how": self.how,
            "before": {key(r): r.before for r in self.rows},
            "after": {key(r): r.after for r in self.rows},
            "rows": [asdict(r) for r in self.rows],
        }


@dataclass(frozen=True)
class DeletedOffsets:
    """What `groups delete-offsets` did: per partition, the offset it removed and the
    broker's verdict (``Successful`` or the error name, as the Kafka tool prints it)."""

    group: str
    rows: list[tuple[str, int, int | None, str]]
    audit_id: int | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "group": self.group,
            "audit_id": self.audit_id,
            "partitions": [
                {"topic": t, "partition": p, "before": b, "status": s} for t, p, b, s in self.rows
            ],
        }
