"""How `topics diff` / `topics apply` report a topic plan (pure: plan in, text or dict out)."""

from __future__ import annotations

from typing import Any

from mmstream.kafka.admin import TopicPlan


def plan_dict(p: TopicPlan) -> dict[str, Any]:
    """JSON-ready form of a plan."""
    return {
        "create": [{"topic": s.name, "partitions": s.partitions,
                    "replication_factor": s.replication_factor, "configs": s.configs} for s in p.create],
        "increase_partitions": [{"topic": t, "have": h, "want": w} for t, h, w in p.grow],
        "cannot_shrink": [{"topic": t, "have": h, "want": w} for t, h, w in p.shrink],
        "configs": [{"topic": c.topic, "key": c.key, "have": c.have, "want": c.want} for c in p.configs],
        "undeclared": p.undeclared,
        "up_to_date": len(p.ok),
    }


def plan_lines(p: TopicPlan, *, allow_delete: bool = False) -> list[str]:
    """``+`` create, ``^`` add partitions, ``~`` set config, ``!`` cannot fix, ``-`` delete
    (``?`` undeclared, kept without --allow-delete)."""
    out = [f"+ {s.name} partitions={s.partitions} rf={s.replication_factor}" for s in p.create]
    out += [f"^ {t} partitions {h} -> {w}" for t, h, w in p.grow]
    out += [f"~ {c.topic} {c.key}: {c.have if c.have is not None else '(unset)'} -> {c.want}"
            for c in p.configs]
    out += [f"! {t} has {h} partitions, {w} declared: Kafka cannot shrink a topic" for t, h, w in p.shrink]
    mark = "-" if allow_delete else "?"
    out += [f"{mark} {t} is not in the topic file" + ("" if allow_delete else " (kept; --allow-delete removes it)")
            for t in p.undeclared]
    out.append(f"{len(p.ok)} up to date, {len(p.create)} to create, {len(p.grow)} to grow, "
               f"{len(p.configs)} config(s) to set, {len(p.shrink)} unfixable, {len(p.undeclared)} undeclared")
    return out


def has_changes(p: TopicPlan) -> bool:
    """Whether the cluster differs from the file at all."""
    return bool(p.create or p.grow or p.shrink or p.configs or p.undeclared)
