"""Plain-text tables for the operator commands (pure: data in, text out)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from mmstream.ops.model import DeletedOffsets, GroupSummary, GroupView, ResetPlan


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, numbers right-aligned, ``-`` for missing values."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(r[i], int | float) or r[i] is None for r in rows) and rows
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def age(seconds: float | None) -> str:
    """``42s``, ``7m``, ``3h05m``, ``2d04h``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def as_json(value: Any) -> str:
    """Indented JSON (UTF-8 names kept readable)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def group_summaries(items: list[GroupSummary]) -> str:
    """The `groups list` table."""
    if not items:
        return "no consumer groups"
    return table(
        ["GROUP", "STATE", "MEMBERS", "LAG", "TOPICS"],
        [[g.group, g.state, g.members, g.total_lag, ",".join(g.topics)] for g in items],
    )


def kafka_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], widths: Sequence[int | None]
) -> str:
    """kafka-consumer-groups.sh's layout: a blank line, then ``%-Ns`` columns joined by one
    space, the last one unpadded. ``widths``: a fixed width, or None for max(15, longest)."""
    cells = [[MISSING if v is None else str(v) for v in row] for row in rows]
    sized = [
        w if w is not None else max(15, *(len(r[i]) for r in cells), 0)
        for i, w in enumerate(widths)
    ]

    def line(values: Sequence[str]) -> str:
        return " ".join(
            [*(v.ljust(w) for v, w in zip(values[:-1], sized, strict=False)), values[-1]]
        )

    return "\n" + "\n".join([line(headers), *(line(r) for r in cells)])


# kafka-consumer-groups.sh's placeholder for a value it does not have.
MISSING = "-"


def group_view(view: GroupView) -> str:
    """The `groups describe` table, column for column as ``kafka-consumer-groups.sh
    --describe``: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST
    CLIENT-ID (the figures only mmctl has go to ``group_notes``)."""
    return kafka_table(
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        [
            *(
                [
                    view.group,
                    p.topic,
                    p.partition,
                    p.committed,
                    p.end,
                    p.lag,
                    p.consumer_id,
                    p.host,
                    p.owner,
                ]
                for p in view.partitions
            ),
            # A member without partitions is a row of its own, as the Kafka tool shows it.
            *(
                [view.group, None, None, None, None, None, m.member_id, m.host, m.client_id]
                for m in view.members
                if not m.partitions
            ),
        ],
        [None, None, 10, 15, 15, 15, None, None, None],
    )


def group_notes(view: GroupView) -> list[str]:
    """What `groups describe` says besides the table (on stderr, so stdout parses as the
    Kafka tool's): the state as the Kafka tool words it, lag per entity, and a bound on
    the time since the last commit."""
    out = []
    if view.state == "EMPTY" or (not view.active and not view.members):
        out.append(f"Consumer group '{view.group}' has no active members.")
    elif view.state in ("PREPARING_REBALANCE", "COMPLETING_REBALANCE"):
        out.append(f"Warning: Consumer group '{view.group}' is rebalancing.")
    last = view.last_commit_at_most_s
    out.append(
        f"group {view.group}: {view.state}{' (active)' if view.active else ''}, "
        f"{len(view.members)} member(s), total lag {view.total_lag}; lag by entity: "
        + (", ".join(f"{k} {v}" for k, v in view.lag_by_entity.items()) or "none")
    )
    out.append(
        "last offset-moving commit: "
        + (f"at most {age(last)} ago" if last is not None else "unknown")
        + " (bound from the newest committed record's timestamp)"
    )
    return out


def reset_plan(plan: ResetPlan) -> str:
    """The plan of `groups reset`, column for column as ``kafka-consumer-groups.sh
    --reset-offsets``: GROUP TOPIC PARTITION NEW-OFFSET."""
    return kafka_table(
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        [[plan.group, r.topic, r.partition, r.after] for r in plan.rows],
        [None, None, 10, None],
    )


def reset_notes(plan: ResetPlan, executed: bool) -> list[str]:
    """What `groups reset` says besides the plan (on stderr): whether it was applied, and
    each partition's move and note."""
    head = (
        "reset applied" if executed else "dry run: nothing changed (add --execute to apply)"
    ) + f": group {plan.group}, {plan.how}"
    return [
        head,
        *(
            f"  {r.topic}[{r.partition}] {MISSING if r.before is None else r.before} -> "
            f"{r.after}{f' ({r.note})' if r.note else ''}"
            for r in plan.rows
        ),
    ]


def plan_csv(plan: ResetPlan) -> str:
    """The plan as ``kafka-consumer-groups.sh --export`` writes it for one group:
    ``topic,partition,offset`` lines (what ``--from-file`` reads back)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for r in plan.rows:
        writer.writerow([r.topic, r.partition, r.after])
    return buf.getvalue().rstrip("\n")


def deleted_offsets(done: DeletedOffsets) -> str:
    """The result of `groups delete-offsets`, as kafka-consumer-groups.sh --delete-offsets
    prints it: TOPIC PARTITION STATUS."""
    ok = all(s == "Successful" for *_, s in done.rows)
    head = (
        f"Request succeed for deleting offsets from group {done.group}."
        if ok
        else f"Request failed for some partitions of group {done.group}."
    )
    return (
        head
        + "\n"
        + kafka_table(
            ["TOPIC", "PARTITION", "STATUS"],
            [[t, p, s] for t, p, _, s in done.rows],
            [None, 15, None],
        )
    )
