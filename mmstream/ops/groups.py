"""Reading consumer groups from the cluster: state, members, committed offsets, lag.

The embedded broker lists only groups that have commits, in state UNKNOWN, and describes
groups without members (tansu.md); so partitions come from the committed offsets as well as
from member assignments, and "active" also trusts the group state alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from mmstream.errors import BrokerUnavailable
from mmstream.kafka.admin import admin_client, existing_topics
from mmstream.kafka.lag import TP, Committed, committed_offsets, end_offsets, partition_lag
from mmstream.ops.errors import GroupNotFound
from mmstream.ops.model import GroupSummary, GroupView, Member, PartitionState
from mmstream.ops.timeindex import first_records
from mmstream.settings import Settings
from mmstream.topics import effective_specs, load_catalog

UNDECLARED = "(undeclared)"


def entities(settings: Settings) -> dict[str, str]:
    """Physical topic name -> entity type, from the topic file."""
    specs = effective_specs(settings, load_catalog(settings.topics_file))
    return {s.name: s.entity or UNDECLARED for s in specs}


def group_state(
    admin: AdminClient, group: str, timeout_s: float = 10.0
) -> tuple[str, list[Member]]:
    """The group's state name (STABLE, EMPTY, DEAD, UNKNOWN, ...) and its live members."""
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group].result()
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot describe group {group!r}: {exc}") from exc
    members = [
        Member(
            m.member_id,
            m.client_id,
            m.host,
            sorted((tp.topic, tp.partition) for tp in (m.assignment.topic_partitions or [])),
        )
        for m in desc.members or []
    ]
    return desc.state.name, members


def list_group_ids(admin: AdminClient, timeout_s: float = 10.0) -> list[str]:
    """Every consumer group the cluster reports, sorted."""
    try:
        result = admin.list_consumer_groups(request_timeout=timeout_s).result()
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot list consumer groups: {exc}") from exc
    return sorted(g.group_id for g in result.valid)


def _partitions(
    committed: dict[TP, Committed], members: list[Member], counts: dict[str, int]
) -> list[TP]:
    # Every partition of every topic the group touches: an uncommitted partition of a
    # consumed topic is worth seeing (lag unknown, not zero).
    topics = {t for t, _ in committed} | {t for m in members for t, _ in m.partitions}
    return sorted((t, p) for t in topics if t in counts for p in range(counts[t]))


def _ages(
    settings: Settings, committed: dict[TP, Committed], ends: dict[TP, int]
) -> dict[TP, float]:
    positions = {
        tp: c.offset - 1 for tp, c in committed.items() if tp in ends and 0 < c.offset <= ends[tp]
    }
    records = first_records(settings.kafka, positions, ends)
    now_ms = time.time() * 1000
    return {
        tp: max(0.0, (now_ms - rec.timestamp_ms) / 1000)
        for tp, rec in records.items()
        if rec is not None and rec.offset == positions[tp] and rec.timestamp_ms >= 0
    }


def describe(settings: Settings, group: str, admin: AdminClient | None = None) -> GroupView:
    """State, members, and per-partition committed/end/lag of ``group``."""
    admin = admin or admin_client(settings)
    state, members = group_state(admin, group)
    committed = committed_offsets(admin, group)
    if not committed and not members and state in ("DEAD", "UNKNOWN", "EMPTY"):
        raise GroupNotFound(f"consumer group {group!r} has no members and no committed offsets")
    tps = _partitions(committed, members, existing_topics(admin))
    ends = end_offsets(settings.kafka, tps, admin=admin)
    ages = _ages(settings, committed, ends)
    owners = {tp: m for m in members for tp in m.partitions}
    kinds = entities(settings)
    rows = []
    for tp in tps:
        c, owner = committed.get(tp), owners.get(tp)
        rows.append(
            PartitionState(
                topic=tp[0],
                partition=tp[1],
                entity=kinds.get(tp[0], UNDECLARED),
                committed=c.offset if c else None,
                end=ends[tp],
                lag=partition_lag(c.offset if c else None, ends[tp]),
                owner=owner.client_id if owner else None,
                commit_metadata=c.metadata if c else None,
                newest_committed_record_age_s=ages.get(tp),
                consumer_id=owner.member_id if owner else None,
                host=owner.host if owner else None,
            )
        )
    return GroupView(group, state, members, rows)


def summaries(
    settings: Settings, progress: Callable[[str], None] | None = None
) -> list[GroupSummary]:
    """One line per group: state, member count, topics and total lag."""
    admin = admin_client(settings)
    counts = existing_topics(admin)
    found = []
    for group in list_group_ids(admin):
        state, members = group_state(admin, group)
        committed = committed_offsets(admin, group)
        found.append((group, state, members, committed, _partitions(committed, members, counts)))
        if progress:
            progress(group)
    ends = end_offsets(settings.kafka, {tp for *_, tps in found for tp in tps}, admin=admin)
    out = []
    for group, state, members, committed, tps in found:
        lag = sum(
            partition_lag(committed[tp].offset, ends[tp]) or 0 for tp in tps if tp in committed
        )
        out.append(GroupSummary(group, state, len(members), sorted({t for t, _ in tps}), lag))
    return out
