"""`groups reset`, `delete` and `delete-offsets`: plan, refuse while members are live,
apply, audit.

Semantics follow kafka-consumer-groups: targets outside [log start, end] are clamped (and
the row says so); --to-datetime/--by-duration pick the first offset whose record timestamp
is at or after the time (the end when there is none); --shift-by moves the committed offset.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from sqlalchemy import Engine, create_engine, pool

from mmstream import audit
from mmstream.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    MMStreamError,
    classify,
)
from mmstream.kafka.admin import admin_client, existing_topics
from mmstream.kafka.lag import TP, committed_offsets, end_offsets, list_offsets
from mmstream.ops.errors import InvalidResetSpec, OperationRefused
from mmstream.ops.groups import group_state
from mmstream.ops.model import DeletedOffsets, ResetPlan, ResetRow
from mmstream.ops.timeindex import offsets_for_time
from mmstream.ops.timespec import parse_duration, parse_instant, to_epoch_ms
from mmstream.settings import Settings

KINDS = ("earliest", "latest", "current", "datetime", "duration", "shift", "offset", "file")
_FLAGS = {
    "earliest": "--to-earliest",
    "latest": "--to-latest",
    "current": "--to-current",
    "datetime": "--to-datetime",
    "duration": "--by-duration",
    "shift": "--shift-by",
    "offset": "--to-offset",
    "file": "--from-file",
}


@dataclass(frozen=True)
class ResetTarget:
    """Where to move: one of KINDS and its argument (None, ISO text, a number, or for
    ``file`` the file's name; its offsets travel separately in ``offsets``)."""

    kind: str
    value: str | int | None = None
    offsets: dict[TP, int] | None = None

    def describe(self) -> str:
        """Human form, e.g. ``--shift-by -10``."""
        flag = _FLAGS[self.kind]
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
        raise InvalidResetSpec(
            f"{arg!r}: partitions after ':' must be numbers, e.g. {name}:0,2"
        ) from None


def parse_plan_csv(text: str, group: str, source: str = "the plan file") -> dict[TP, int]:
    """A reset plan as kafka-consumer-groups.sh --export writes it: ``topic,partition,offset``
    lines (one group), or ``group,topic,partition,offset`` lines (of which ``group``'s)."""
    out: dict[TP, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) == 4:
            if row[0].strip() != group:
                continue
            row = row[1:]
        if len(row) != 3:
            raise InvalidResetSpec(
                f"{source} line {number}: expected topic,partition,offset "
                f"(or group,topic,partition,offset), got {','.join(row)!r}"
            )
        topic, partition, offset = (v.strip() for v in row)
        try:
            out[(topic, int(partition))] = int(offset)
        except ValueError:
            raise InvalidResetSpec(
                f"{source} line {number}: partition and offset must be "
                f"numbers, got {','.join(row)!r}"
            ) from None
    if not out:
        raise InvalidResetSpec(f"{source} has no offsets for group {group!r}")
    return out


def resolve_topic(settings: Settings, name: str, counts: dict[str, int]) -> str:
    """The physical topic: the name as given, or the topic file's name with the prefix."""
    for candidate in (name, settings.topic(name)):
        if candidate in counts:
            return candidate
    raise InvalidResetSpec(f"topic {name!r} does not exist on {settings.kafka.bootstrap_servers}")


def plan_rows(
    target: ResetTarget,
    tps: list[TP],
    committed: dict[TP, int],
    starts: dict[TP, int],
    ends: dict[TP, int],
    by_time: dict[TP, int] | None = None,
    scanned: frozenset[TP] = frozenset(),
) -> list[ResetRow]:
    """The new offset of every partition (pure: all positions are given)."""
    rows = []
    for tp in tps:
        before, low, high, note = committed.get(tp), starts[tp], ends[tp], ""
        if target.kind == "earliest":
            wanted = low
        elif target.kind == "latest":
            wanted = high
        elif target.kind == "current":
            # kafka-consumer-groups: the committed offset; the log end where there is none.
            wanted = high if before is None else before
            note = "no committed offset: the log end" if before is None else ""
        elif target.kind == "offset":
            wanted = int(target.value)  # type: ignore[arg-type]
        elif target.kind == "file":
            wanted = (target.offsets or {})[tp]
        elif target.kind == "shift":
            if before is None:
                raise InvalidResetSpec(
                    f"{tp[0]}[{tp[1]}] has no committed offset to shift from; "
                    "choose partitions with --topic TOPIC:0,2 or use "
                    "--to-earliest/--to-latest/--to-offset"
                )
            wanted = before + int(target.value)  # type: ignore[arg-type]
        else:
            wanted = (by_time or {})[tp]
            note = "found by reading record timestamps" if tp in scanned else ""
        after = min(max(wanted, low), high)
        if after != wanted:
            note = f"{wanted} is outside [{low}, {high}]: clamped"
        rows.append(ResetRow(tp[0], tp[1], before, after, note))
    return rows


def _scope(
    settings: Settings,
    admin: AdminClient,
    group: str,
    topic_args: list[str],
    all_topics: bool,
    target: ResetTarget,
) -> list[TP]:
    """The partitions a reset covers: the plan file's, the group's committed ones
    (--all-topics, as kafka-consumer-groups), or those of the named topics."""
    counts = existing_topics(admin)
    if target.kind == "file":
        wanted = [(resolve_topic(settings, t, counts), p) for t, p in (target.offsets or {})]
    elif all_topics:
        wanted = list(committed_offsets(admin, group))
        if not wanted:
            raise InvalidResetSpec(
                f"group {group!r} has no committed offsets, so --all-topics "
                "selects nothing: name the topics with --topic"
            )
    else:
        wanted = []
        for arg in topic_args:
            name, only = parse_topic(arg)
            topic = resolve_topic(settings, name, counts)
            wanted += [(topic, p) for p in (only if only is not None else range(counts[topic]))]
    bad = sorted(f"{t}[{p}]" for t, p in wanted if t in counts and not 0 <= p < counts[t])
    bad += sorted(f"{t}[{p}]" for t, p in wanted if t not in counts)
    if bad:
        raise InvalidResetSpec(
            f"partitions {bad} do not exist on {settings.kafka.bootstrap_servers}"
        )
    return sorted(set(wanted))


def build_plan(
    settings: Settings,
    group: str,
    topic_args: list[str] | str,
    target: ResetTarget,
    progress: Callable[[int], None] | None = None,
    admin: AdminClient | None = None,
    *,
    all_topics: bool = False,
) -> ResetPlan:
    """Compute the preview: current and new offset per partition. Changes nothing."""
    admin = admin or admin_client(settings)
    args = [topic_args] if isinstance(topic_args, str) else list(topic_args)
    if target.kind == "file" and target.offsets is not None:
        # The file names physical topics, or topic-file names: key the offsets physically.
        counts = existing_topics(admin)
        target = ResetTarget(
            "file",
            target.value,
            {(resolve_topic(settings, t, counts), p): o for (t, p), o in target.offsets.items()},
        )
    tps = _scope(settings, admin, group, args, all_topics, target)
    ends = end_offsets(settings.kafka, tps, admin=admin)
    # Earliest is right on both brokers (only the latest answer is broken on the embedded one).
    starts = list_offsets(admin, tps, OffsetSpec.earliest())
    committed = {tp: c.offset for tp, c in committed_offsets(admin, group, tps).items()}
    ts_ms = target.timestamp_ms(datetime.now(UTC))
    by_time, scanned = None, frozenset[TP]()
    if ts_ms is not None:
        found = offsets_for_time(settings.kafka, admin, starts, ends, ts_ms, progress)
        by_time, scanned = found.offsets, found.scanned
    rows = plan_rows(target, tps, committed, starts, ends, by_time, scanned)
    return ResetPlan(group, sorted({t for t, _ in tps}), target.describe(), rows)


def require_actor(settings: Settings) -> str:
    """Who the audit trail records for a change; refused (nothing changed) when
    MM_OPS__ACTOR is unset outside the embedded stack: a shared account (a pod's, a
    container's ``mm``) says nothing about who reset a production group."""
    if settings.ops.actor:
        return settings.ops.actor
    if settings.profile != "embedded":
        raise ConfigurationError(
            "set MM_OPS__ACTOR to your name (e.g. MM_OPS__ACTOR=jane.doe mmctl ...): audited "
            "changes record who made them; nothing was changed"
        )
    return audit.actor(settings)


def refuse_if_active(admin: AdminClient, group: str, doing: str) -> None:
    """Raise OperationRefused naming the live members when the group has any."""
    state, members = group_state(admin, group)
    if members or state in ("STABLE", "PREPARING_REBALANCE", "COMPLETING_REBALANCE"):
        who = (
            ", ".join(f"{m.client_id}@{m.host} ({m.member_id})" for m in members)
            or "the broker did not name them"
        )
        raise OperationRefused(
            f"cannot {doing}: group {group!r} is active ({state}) with members: {who}. "
            "Stop its consumers (and wait for the session timeout after a crash), then retry."
        )


def _audit_engine(settings: Settings) -> Engine:
    """A sync engine, checked before anything changes: an unauditable change is not made."""
    engine = create_engine(
        settings.require_database_url(),
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": 5},
    )
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
        raise MMStreamError(
            f"{action} on {target} WAS APPLIED but its audit row failed "
            f"({classify(exc)}); record it by hand: {details}"
        ) from exc
    finally:
        engine.dispose()


def execute(settings: Settings, plan: ResetPlan, admin: AdminClient | None = None) -> int:
    """Apply a reset plan (refused while the group is active) and audit it; the audit id."""
    admin = admin or admin_client(settings)
    who = require_actor(settings)
    refuse_if_active(admin, plan.group, "reset offsets")
    engine = _audit_engine(settings)
    stamp = f"mmctl reset by {who} at {datetime.now(UTC).isoformat(timespec='seconds')}"
    request = ConsumerGroupTopicPartitions(
        plan.group,
        [TopicPartition(r.topic, r.partition, r.after, metadata=stamp) for r in plan.rows],
    )
    try:
        result = admin.alter_consumer_group_offsets([request])[plan.group].result()
    except KafkaException as exc:
        engine.dispose()
        raise BrokerUnavailable(
            f"the broker refused the reset of {plan.group!r} (nothing audited, "
            f"check `groups describe`): {exc}"
        ) from exc
    failed = [
        f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result.topic_partitions if tp.error
    ]
    if failed:
        engine.dispose()
        raise BrokerUnavailable(f"partitions not reset: {failed}")
    return _record(engine, who, "groups.reset", plan.group, plan.as_dict())


def delete(settings: Settings, group: str, admin: AdminClient | None = None) -> int:
    """Delete a consumer group (refused while active: the embedded broker would not refuse)."""
    who = require_actor(settings)
    admin = admin or admin_client(settings)
    refuse_if_active(admin, group, "delete the group")
    before = committed_offsets(admin, group)
    engine = _audit_engine(settings)
    try:
        admin.delete_consumer_groups([group])[group].result()
    except KafkaException as exc:
        engine.dispose()
        raise BrokerUnavailable(f"cannot delete group {group!r}: {exc}") from exc
    details = {
        "before": {f"{t}[{p}]": c.offset for (t, p), c in sorted(before.items())},
        "after": None,
    }
    return _record(engine, who, "groups.delete", group, details)


# ---- OffsetDelete (KIP-496): kafka-consumer-groups.sh --delete-offsets ------------------
# Neither confluent-kafka nor aiokafka exposes this admin call; aiokafka's protocol layer
# sends it (version 0, the one every broker since Kafka 2.4 serves).


class _OffsetDeleteResponse(Response):
    API_KEY = 47
    API_VERSION = 0
    SCHEMA = Schema(
        ("error_code", Int16),
        ("throttle_time_ms", Int32),
        (
            "topics",
            Array(
                ("name", String("utf-8")),
                ("partitions", Array(("partition_index", Int32), ("error_code", Int16))),
            ),
        ),
    )


class _OffsetDeleteStruct(RequestStruct):
    API_KEY = 47
    API_VERSION = 0
    RESPONSE_TYPE = _OffsetDeleteResponse
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("topics", Array(("name", String("utf-8")), ("partitions", Array(Int32)))),
    )


class _OffsetDelete(Request[_OffsetDeleteStruct]):
    API_KEY = 47

    def __init__(self, group: str, tps: list[TP]) -> None:
        self._group, self._tps = group, tps

    def build(self, request_struct_class: type[_OffsetDeleteStruct]) -> _OffsetDeleteStruct:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in self._tps:
            by_topic.setdefault(topic, []).append(partition)
        return request_struct_class(self._group, list(by_topic.items()))


async def _offset_delete(settings: Settings, group: str, tps: list[TP]) -> dict[TP, int]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        request_timeout_ms=15000,
        **settings.kafka.aiokafka_security(),
    )
    await client.start()
    try:
        node = await client.find_coordinator(group)
        response = await client._send_request_to_node(node, _OffsetDelete(group, tps))  # noqa: SLF001 — no public call
    finally:
        await client.close()
    if response.error_code:
        raise OperationRefused(
            f"the broker refused to delete offsets of group {group!r}: "
            f"{for_code(response.error_code).__name__}"
        )
    return {(topic, p): code for topic, parts in response.topics for p, code in parts}


def delete_offsets(
    settings: Settings, group: str, topic_args: list[str], admin: AdminClient | None = None
) -> DeletedOffsets:
    """Delete ``group``'s committed offsets on the named topics / partitions (refused while
    the group is active, as Kafka itself refuses it for subscribed topics); audited."""
    import asyncio

    from aiokafka.errors import IncompatibleBrokerVersion

    who = require_actor(settings)
    admin = admin or admin_client(settings)
    tps = _scope(settings, admin, group, topic_args, False, ResetTarget("earliest"))
    refuse_if_active(admin, group, "delete committed offsets")
    before = {tp: c.offset for tp, c in committed_offsets(admin, group, tps).items()}
    engine = _audit_engine(settings)
    try:
        codes = asyncio.run(_offset_delete(settings, group, tps))
    except IncompatibleBrokerVersion:
        engine.dispose()
        raise OperationRefused(
            f"{settings.kafka.bootstrap_servers} does not serve OffsetDelete "
            "(Kafka 2.4+): nothing was deleted"
        ) from None
    except OperationRefused:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        raise BrokerUnavailable(
            f"deleting offsets of group {group!r} failed: {classify(exc)}"
        ) from exc
    rows = [
        (
            t,
            p,
            before.get((t, p)),
            "Successful" if not codes.get((t, p)) else for_code(codes[(t, p)]).__name__,
        )
        for t, p in tps
    ]
    details = {
        "before": {f"{t}:{p}": b for t, p, b, _ in rows},
        "after": {f"{t}:{p}": None if s == "Successful" else b for t, p, b, s in rows},
    }
    audit_id = _record(engine, who, "groups.delete_offsets", group, details)
    return DeletedOffsets(group, rows, audit_id)
