"""``mmctl groups``: consumer groups — list, describe (lag), reset offsets, delete."""

from __future__ import annotations

import click

from mmstream import log
from mmstream.cli.output import Counter, output_option
from mmstream.ops import render
from mmstream.settings import Settings, get_settings


def _settings() -> Settings:
    settings = get_settings()
    log.setup("mmctl", "WARNING", settings.log_format)
    return settings


@click.group()
def groups() -> None:
    """Consumer groups: state, members, committed offsets and lag; offset resets."""


@groups.command("list")
@output_option
def list_groups(output: str) -> None:
    """Every group with its state, member count, topics and total lag."""
    from mmstream.ops.groups import summaries

    counter = Counter("groups read")
    items = summaries(_settings(), progress=lambda _g: counter.add())
    counter.done()
    click.echo(render.as_json([g.as_dict() for g in items]) if output == "json"
               else render.group_summaries(items))


@groups.command()
@click.argument("group")
@output_option
def describe(group: str, output: str) -> None:
    """Members and their partitions; committed offset, end offset and lag per partition;
    lag per entity type; a bound on the time since the last commit.

    Kafka does not tell when an offset was committed. The report gives the age of the
    newest record the group committed past: the commit came later, so the time since the
    last commit that moved the offset is at most that.
    """
    from mmstream.ops.groups import describe as read

    view = read(_settings(), group)
    click.echo(render.as_json(view.as_dict()) if output == "json" else render.group_view(view))


@groups.command()
@click.argument("group")
@click.option("--topic", "topic", required=True,
              help="Topic (physical, or as named in the topic file); TOPIC:0,2 for some partitions.")
@click.option("--to-earliest", "kind", flag_value="earliest", help="To the log start.")
@click.option("--to-latest", "kind", flag_value="latest", help="To the end (skip everything).")
@click.option("--to-datetime", "when", help="To the first record at/after an ISO time with offset.")
@click.option("--by-duration", "duration", help="To the first record at/after now minus e.g. PT1H.")
@click.option("--shift-by", "shift", type=int, help="Move the committed offset by N (negative: back).")
@click.option("--to-offset", "offset", type=int, help="To offset N on every chosen partition.")
@click.option("--execute", is_flag=True, help="Apply (default: preview only).")
@output_option
def reset(group: str, topic: str, kind: str | None, when: str | None, duration: str | None,
          shift: int | None, offset: int | None, execute: bool, output: str) -> None:
    """Preview, or with --execute apply, an offset reset of GROUP on one topic.

    Refused while the group has live members. Applied resets are written to the audit
    trail (who, when, before/after offsets). Offsets outside the log are clamped.
    """
    from mmstream.ops.reset import ResetTarget, build_plan
    from mmstream.ops.reset import execute as apply

    chosen = [t for t in [
        ResetTarget(kind) if kind else None,
        ResetTarget("datetime", when) if when else None,
        ResetTarget("duration", duration) if duration else None,
        ResetTarget("shift", shift) if shift is not None else None,
        ResetTarget("offset", offset) if offset is not None else None,
    ] if t]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --to-earliest, --to-latest, --to-datetime, "
                               "--by-duration, --shift-by, --to-offset")
    settings = _settings()
    counter = Counter("records scanned for the timestamp")
    plan = build_plan(settings, group, topic, chosen[0], progress=counter.add)
    counter.done()
    audit_id = apply(settings, plan) if execute else None
    if output == "json":
        click.echo(render.as_json({**plan.as_dict(), "executed": execute, "audit_id": audit_id}))
    else:
        click.echo(render.reset_plan(plan, executed=execute))
        if audit_id is not None:
            click.echo(f"audit record {audit_id}")


@groups.command()
@click.argument("group")
@output_option
def delete(group: str, output: str) -> None:
    """Delete GROUP and its committed offsets (refused while it has live members; audited)."""
    from mmstream.ops.reset import delete as remove

    audit_id = remove(_settings(), group)
    click.echo(render.as_json({"group": group, "deleted": True, "audit_id": audit_id})
               if output == "json" else f"deleted group {group} (audit record {audit_id})")
