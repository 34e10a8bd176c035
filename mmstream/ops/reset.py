"""`groups reset` and `groups delete`: plan, refuse while members are live, apply, audit.

Semantics follow kafka-consumer-groups: targets outside [log start, end] are clamped (and
the row says so); --to-datetime/--by-duration pick the first offset whose record timestamp
is at or after the time (the end when there is none); --shift-by moves the committed offset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from sqlalchemy import Engine, create_engine, pool

from mmstream import audit
from mmstream.errors import BrokerUnavailable, DatabaseUnavailable, MMStreamError, classify
from mmstream.kafka.admin import admin_client, existing_topics
from mmstream.kafka.lag import TP, committed_offsets, end_offsets, list_offsets
from mmstream.ops.errors import InvalidResetSpec, OperationRefused
from mmstream.ops.groups import group_state
from mmstream.ops.model import ResetPlan, ResetRow
from mmstream.ops.timeindex import offsets_for_time
from mmstream.ops.timespec import parse_duration, parse_instant, to_epoch_ms
from mmstream.settings import Settings

KINDS = ("earliest", "latest", "datetime", "duration", "shift", "offset")


@dataclass(frozen=True)
class ResetTarget:
    """Where to move: one of KINDS and its argument (None, ISO text or a number)."""

    kind: str
    value: str | int | None = None

    def describe(self) -> str:
        """Human form, e.g. ``--shift-by -10``."""
        flag = {"earliest": "--to-earliest", "latest": "--to-latest", "datetime": "--to-datetime",
                "duration": "--by-duration", "shift": "--shift-by", "offset": "--to-offset"}[self.kind]
        return flag if self.value is None else f"{flag} {self.value}"

    def timestamp_ms(self, now: datetime) -> int | None:
        """The record time the target means, for the two time-based kinds."""
        if self.kind == "datetime":
            return to_epoch_ms(parse_instant(str(self.value)))
        if self.kind == "duration":
            return to_epoch_ms(now - parse_duration(str(self.value)))
        return None


def parse_topic(arg: str) -> tuple[str, list[int] | None]:
    """``topic`` or ``topic:0,2`` (kafka-consumer-groups syntax) -> (topic, partitions)."""
    name, sep, parts = arg.rpartition(":") if ":" in arg else (arg, "", "")
    if not sep:
        return arg, None
    try:
        return name, sorted({int(p) for p in parts.split(",")})
    except ValueError:
        raise InvalidResetSpec(f"{arg!r}: partitions after ':' must be numbers, e.g. {name}:0,2") from None


def resolve_topic(settings: Settings, name: str, counts: dict[str, int]) -> str:
    """The physical topic: the name as given, or the topic file's name with the prefix."""
    for candidate in (name, settings.topic(name)):
        if candidate in counts:
            return candidate
    raise InvalidResetSpec(f"topic {name!r} does not exist on {settings.kafka.bootstrap_servers}")


def plan_rows(target: ResetTarget, tps: list[TP], committed: dict[TP, int], starts: dict[TP, int],
              ends: dict[TP, int], by_time: dict[TP, int] | None = None,
              scanned: frozenset[TP] = frozenset()) -> list[ResetRow]:
    """The new offset of every partition (pure: all positions are given)."""
    rows = []
    for tp in tps:
        before, low, high, note = committed.get(tp), starts[tp], ends[tp], ""
        if target.kind == "earliest":
            wanted = low
        elif target.kind == "latest":
            wanted = high
        elif target.kind == "offset":
            wanted = int(target.value)  # type: ignore[arg-type]
        elif target.kind == "shift":
            if before is None:
                raise InvalidResetSpec(f"{tp[0]}[{tp[1]}] has no committed offset to shift from; "
                                       "choose partitions with --topic TOPIC:0,2 or use "
                                       "--to-earliest/--to-latest/--to-offset")
            wanted = before + int(target.value)  # type: ignore[arg-type]
        else:
            wanted = (by_time or {})[tp]
            note = "found by reading record timestamps" if tp in scanned else ""
        after = min(max(wanted, low), high)
        if after != wanted:
            note = f"{wanted} is outside [{low}, {high}]: clamped"
        rows.append(ResetRow(tp[0], tp[1], before, after, note))
    return rows


def build_plan(settings: Settings, group: str, topic_arg: str, target: ResetTarget,
               progress: Callable[[int], None] | None = None,
               admin: AdminClient | None = None) -> ResetPlan:
    """Compute the preview: current and new offset per partition. Changes nothing."""
    admin = admin or admin_client(settings)
    name, only = parse_topic(topic_arg)
    counts = existing_topics(admin)
    topic = resolve_topic(settings, name, counts)
    parts = only if only is not None else list(range(counts[topic]))
    bad = [p for p in parts if not 0 <= p < counts[topic]]
    if bad:
        raise InvalidResetSpec(f"{topic} has partitions 0..{counts[topic] - 1}, not {bad}")
    tps = [(topic, p) for p in parts]
    ends = end_offsets(settings.kafka, tps, admin=admin)
    # Earliest is right on both brokers (only the latest answer is broken on the embedded one).
    starts = list_offsets(admin, tps, OffsetSpec.earliest())
    committed = {tp: c.offset for tp, c in committed_offsets(admin, group, tps).items()}
    ts_ms = target.timestamp_ms(datetime.now(UTC))
    by_time, scanned = None, frozenset()
    if ts_ms is not None:
        found = offsets_for_time(settings.kafka, admin, starts, ends, ts_ms, progress)
        by_time, scanned = found.offsets, found.scanned
    rows = plan_rows(target, tps, committed, starts, ends, by_time, scanned)
    return ResetPlan(group, topic, target.describe(), rows)


def refuse_if_active(admin: AdminClient, group: str, doing: str) -> None:
    """Raise OperationRefused naming the live members when the group has any."""
    state, members = group_state(admin, group)
    if members or state in ("STABLE", "PREPARING_REBALANCE", "COMPLETING_REBALANCE"):
        who = ", ".join(f"{m.client_id}@{m.host} ({m.member_id})" for m in members) \
            or "the broker did not name them"
        raise OperationRefused(
            f"cannot {doing}: group {group!r} is active ({state}) with members: {who}. "
            "Stop its consumers (and wait for the session timeout after a crash), then retry.")


def _audit_engine(settings: Settings) -> Engine:
    """A sync engine, checked before anything changes: an unauditable change is not made."""
    engine = create_engine(settings.require_database_url(), poolclass=pool.NullPool,
                           connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except Exception as exc:
        raise DatabaseUnavailable(
            f"the audit trail (database) is unreachable, nothing was changed: {classify(exc)}"
        ) from exc
    return engine


def _record(engine: Engine, actor: str, action: str, target: str, details: dict) -> int:
    try:
        return audit.record_sync(engine, actor, action, target, details)
    except Exception as exc:
        raise MMStreamError(f"{action} on {target} WAS APPLIED but its audit row failed "
                            f"({classify(exc)}); record it by hand: {details}") from exc
    finally:
        engine.dispose()


def execute(settings: Settings, plan: ResetPlan, admin: AdminClient | None = None) -> int:
    """Apply a reset plan (refused while the group is active) and audit it; the audit id."""
    admin = admin or admin_client(settings)
    refuse_if_active(admin, plan.group, "reset offsets")
    engine = _audit_engine(settings)
    who = audit.actor(settings)
    stamp = f"mmctl reset by {who} at {datetime.now(UTC).isoformat(timespec='seconds')}"
    request = ConsumerGroupTopicPartitions(
        plan.group, [TopicPartition(r.topic, r.partition, r.after, metadata=stamp) for r in plan.rows])
    try:
        result = admin.alter_consumer_group_offsets([request])[plan.group].result()
    except KafkaException as exc:
        engine.dispose()
        raise BrokerUnavailable(f"the broker refused the reset of {plan.group!r} (nothing audited, "
                                f"check `groups describe`): {exc}") from exc
    failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result.topic_partitions if tp.error]
    if failed:
        engine.dispose()
        raise BrokerUnavailable(f"partitions not reset: {failed}")
    return _record(engine, who, "groups.reset", plan.group, plan.as_dict())


def delete(settings: Settings, group: str, admin: AdminClient | None = None) -> int:
    """Delete a consumer group (refused while active: the embedded broker would not refuse)."""
    admin = admin or admin_client(settings)
    refuse_if_active(admin, group, "delete the group")
    before = committed_offsets(admin, group)
    engine = _audit_engine(settings)
    try:
        admin.delete_consumer_groups([group])[group].result()
    except KafkaException as exc:
        engine.dispose()
        raise BrokerUnavailable(f"cannot delete group {group!r}: {exc}") from exc
    details = {"before": {f"{t}[{p}]": c.offset for (t, p), c in sorted(before.items())}, "after": None}
    return _record(engine, audit.actor(settings), "groups.delete", group, details)
