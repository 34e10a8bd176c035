"""Plain-text tables for the operator commands (pure: data in, text out)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mmstream.ops.model import GroupSummary, GroupView, ResetPlan


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, numbers right-aligned, ``-`` for missing values."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], int | float) or r[i] is None for r in rows) and rows
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

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
    return table(["GROUP", "STATE", "MEMBERS", "LAG", "TOPICS"],
                 [[g.group, g.state, g.members, g.total_lag, ",".join(g.topics)] for g in items])


def group_view(view: GroupView) -> str:
    """The `groups describe` report: header, members, partitions, lag per entity."""
    last = view.last_commit_at_most_s
    out = [
        f"group {view.group}: {view.state}{' (active)' if view.active else ''}, "
        f"{len(view.members)} member(s), total lag {view.total_lag}",
        "last offset-moving commit: " + (f"at most {age(last)} ago" if last is not None else "unknown")
        + " (bound from the newest committed record's timestamp)",
        "",
    ]
    if view.members:
        out += [table(["CLIENT-ID", "HOST", "MEMBER-ID", "PARTITIONS"],
                      [[m.client_id, m.host, m.member_id,
                        " ".join(f"{t}[{p}]" for t, p in m.partitions) or "-"] for m in view.members]), ""]
    out += [table(["TOPIC", "PARTITION", "ENTITY", "COMMITTED", "END", "LAG", "OWNER", "COMMITTED-RECORD-AGE"],
                  [[p.topic, p.partition, p.entity, p.committed, p.end, p.lag, p.owner,
                    age(p.newest_committed_record_age_s) if p.committed else None]
                   for p in view.partitions]), ""]
    out.append(table(["ENTITY", "LAG"], list(view.lag_by_entity.items())))
    return "\n".join(out)


def reset_plan(plan: ResetPlan, executed: bool) -> str:
    """The preview (or the applied result) of `groups reset`."""
    head = (f"{'reset' if executed else 'preview (nothing changed; add --execute to apply)'}: "
            f"group {plan.group}, topic {plan.topic}, {plan.how}")
    return "\n".join([head, table(["PARTITION", "CURRENT", "NEW", "MOVE", "NOTE"],
                                  [[r.partition, r.before, r.after,
                                    None if r.before is None else r.after - r.before, r.note]
                                   for r in plan.rows])])
