"""Text and JSON views of DLQ records, summaries, replay plans and past replays (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mmstream.audit import AuditEntry
from mmstream.dlq.entry import DlqEntry
from mmstream.dlq.format import PREFIX
from mmstream.ops.render import table
from stages.dlq.payload import describe, pretty
from stages.dlq.replay import ReplayPlan
from stages.dlq.summary import TopicSummary

_PLAN_ROWS = 50


def _time(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _original_headers(entry: DlqEntry) -> list[tuple[str, str]]:
    return [(k, v.decode("utf-8", "replace")) for k, v in entry.headers if not k.startswith(PREFIX)]


def summary_text(s: TopicSummary) -> str:
    """One topic's counts: a line, the reasons table and the top entities."""
    span = f", failures {_time(s.oldest)} .. {_time(s.newest)}" if s.records else ""
    lines = [f"{s.topic}: {s.records} record(s), {s.distinct_entities} entit(ies){span}"]
    if s.incomplete_partitions:
        lines.append(f"  (incomplete: partitions {s.incomplete_partitions})")
    if s.reasons:
        lines.append(
            _indent(
                table(
                    ["STAGE", "CODE", "RECORDS", "ENTITIES", "CLASS", "LAST MESSAGE"],
                    [
                        [r.stage, r.code, r.count, r.entities, r.error_class, r.example]
                        for r in s.reasons
                    ],
                )
            )
        )
    if s.entities:
        lines.append(_indent(table(["ENTITY", "RECORDS"], [[e, n] for e, n in s.entities])))
    return "\n".join(lines) + "\n"


def entry_json(entry: DlqEntry) -> dict[str, Any]:
    """One record for scripts: coordinates, failure, original headers, payload view."""
    return {
        "dlq": {"topic": entry.topic, "partition": entry.partition, "offset": entry.offset},
        "key": entry.entity if entry.key is not None else None,
        "timestamp": entry.timestamp.isoformat() if entry.timestamp else None,
        "failure": entry.failure,
        "headers": [list(h) for h in _original_headers(entry)],
        "payload": describe(entry.value, entry.headers),
    }


def entry_text(entry: DlqEntry) -> str:
    """One record for a person: why and where it failed, its headers, its payload."""
    f = entry.failure
    lines = [
        f"== {entry.coordinates}",
        f"key        {entry.entity if entry.key is not None else '(none)'}",
        f"failed     {f.get('last_failure', '-')} (first {f.get('first_failure', '-')}, "
        f"attempts {f.get('attempts', '-')})",
        f"reason     stage={entry.stage or '-'} code={entry.code} class={f.get('error.class', '-')} "
        f"retriable={f.get('error.retriable', '-')}",
        f"message    {f.get('error.message', '')}",
        f"source     {entry.source_topic or '-'}/{f.get('source.partition', '-')}/"
        f"{f.get('source.offset', '-')}",
    ]
    for i, (k, v) in enumerate(_original_headers(entry)):
        lines.append(f"{'headers' if i == 0 else '':<10} {k}: {v}")
    view = describe(entry.value, entry.headers)
    lines.append(f"payload    ({view['format']}, {view['bytes']} bytes)")
    lines.append(pretty(entry.value, entry.headers))
    return "\n".join(lines) + "\n"


def plan_text(plan: ReplayPlan, earlier: dict[str, int]) -> str:
    """What a replay sends (the first records, then totals per destination)."""
    what = ", ".join(f"{k}={v}" for k, v in plan.selection.describe().items()) or "all"
    lines = [
        f"replay {plan.replay_id} of {plan.dlq_topic} ({what}): {len(plan.items)} record(s)"
        + (", JSON patch applied" if plan.patch else "")
    ]
    rows = [
        [
            f"{i.entry.partition}/{i.entry.offset}",
            i.record.topic,
            i.record.partition,
            i.entry.entity,
            i.entry.code,
            "yes" if i.patched else "no",
        ]
        for i in plan.items[:_PLAN_ROWS]
    ]
    if rows:
        lines.append(table(["DLQ P/OFFSET", "DESTINATION", "P", "KEY", "REASON", "PATCHED"], rows))
    if len(plan.items) > _PLAN_ROWS:
        lines.append(f"… and {len(plan.items) - _PLAN_ROWS} more")
    lines += [f"to {topic}: {n}" for topic, n in plan.destinations().items()]
    lines += [
        f"note: {n} of these record(s) were already replayed by {replay_id} "
        "(harmless: the pipeline dedupes; see `mmctl dlq audit`)"
        for replay_id, n in earlier.items()
    ]
    return "\n".join(lines)


def audit_json(rows: list[AuditEntry]) -> list[dict[str, Any]]:
    """Past replays for scripts."""
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "actor": r.actor,
            "target": r.target,
            "details": r.details,
        }
        for r in rows
    ]


def audit_text(rows: list[AuditEntry]) -> str:
    """Past replays as a table, newest first."""
    if not rows:
        return "no replays recorded"
    out = []
    for r in rows:
        d = r.details
        selection = ",".join(f"{k}={v}" for k, v in (d.get("selection") or {}).items())
        out.append(
            [
                r.id,
                _time(r.at),
                r.actor,
                r.target,
                d.get("records"),
                d.get("patched"),
                d.get("outcome"),
                selection,
                d.get("replay_id"),
            ]
        )
    return table(
        [
            "ID",
            "AT",
            "ACTOR",
            "DLQ TOPIC",
            "RECORDS",
            "PATCHED",
            "OUTCOME",
            "SELECTION",
            "REPLAY ID",
        ],
        out,
    )
