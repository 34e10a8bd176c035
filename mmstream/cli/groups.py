"""``mmctl groups``: consumer groups — list, describe (lag), reset offsets, delete — in the
words of ``kafka-consumer-groups.sh``.

Two spellings, one implementation: the subcommands (``mmctl groups reset --group G
--all-topics --to-earliest``), and the Kafka tool's own argument list after ``mmctl groups``
or ``mmctl kafka-consumer-groups`` (``--bootstrap-server … --group G --reset-offsets
--all-topics --to-earliest --dry-run``). Tables have the Kafka tool's columns on stdout;
what only mmctl knows (state, lag per entity, moves, notes) goes to stderr.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from mmstream import log
from mmstream.cli.connection import announce, apply, connection_options
from mmstream.cli.output import Counter, output_option
from mmstream.ops import render
from mmstream.settings import Settings, get_settings


def _settings() -> Settings:
    apply(click.get_current_context())
    settings = get_settings()
    log.setup("mmctl", "WARNING", settings.log_format)
    return settings


def _one_group(positional: str | None, named: tuple[str, ...]) -> str:
    chosen = ([positional] if positional else []) + list(named)
    if len(chosen) != 1:
        raise click.UsageError("name one consumer group: --group G (or GROUP)")
    return chosen[0]


# ---- what every spelling shares --------------------------------------------------------


@dataclass(frozen=True)
class ResetOptions:
    """The reset scope, target and mode as given on the command line (``_reset_options``)."""

    all_topics: bool
    topics: tuple[str, ...]
    to_earliest: bool
    to_latest: bool
    to_current: bool
    to_offset: int | None
    shift_by: int | None
    to_datetime: str | None
    by_duration: str | None
    from_file: Path | None
    dry_run: bool
    execute: bool
    export: bool


def _target(opts: ResetOptions, group: str):
    from mmstream.ops.reset import ResetTarget, parse_plan_csv

    from_file = opts.from_file
    chosen = [
        t
        for t in [
            ResetTarget("earliest") if opts.to_earliest else None,
            ResetTarget("latest") if opts.to_latest else None,
            ResetTarget("current") if opts.to_current else None,
            ResetTarget("offset", opts.to_offset) if opts.to_offset is not None else None,
            ResetTarget("shift", opts.shift_by) if opts.shift_by is not None else None,
            ResetTarget("datetime", opts.to_datetime) if opts.to_datetime else None,
            ResetTarget("duration", opts.by_duration) if opts.by_duration else None,
            ResetTarget(
                "file",
                str(from_file),
                parse_plan_csv(from_file.read_text(encoding="utf-8"), group, str(from_file)),
            )
            if from_file
            else None,
        ]
        if t
    ]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-current, "
            "--to-offset, --shift-by, --to-datetime, --by-duration, --from-file"
        )
    return chosen[0]


def _list(output: str) -> None:
    from mmstream.ops.groups import summaries

    counter = Counter("groups read")
    items = summaries(_settings(), progress=lambda _g: counter.add())
    counter.done()
    click.echo(
        render.as_json([g.as_dict() for g in items])
        if output == "json"
        else render.group_summaries(items)
    )


def _describe(group: str, output: str) -> None:
    from mmstream.ops.groups import describe as read

    view = read(_settings(), group)
    if output == "json":
        click.echo(render.as_json(view.as_dict()))
        return
    click.echo(render.group_view(view))
    for line in render.group_notes(view):
        click.echo(line, err=True)


def _reset(group: str, opts: ResetOptions, output: str) -> None:
    from mmstream.ops.reset import build_plan
    from mmstream.ops.reset import execute as apply_plan

    target = _target(opts, group)
    if opts.execute and opts.dry_run:
        raise click.UsageError("--dry-run and --execute contradict each other")
    if opts.export and output == "json":
        raise click.UsageError("--export writes CSV: leave out --output json")
    if target.kind != "file" and bool(opts.topics) == opts.all_topics:
        raise click.UsageError(
            "choose the scope: --all-topics, or --topic T (repeatable; T:0,2 for some partitions)"
        )
    settings = _settings()
    counter = Counter("records scanned for the timestamp")
    plan = build_plan(
        settings, group, list(opts.topics), target, progress=counter.add, all_topics=opts.all_topics
    )
    counter.done()
    audit_id = None
    if opts.execute:
        announce(settings, f"resetting offsets of group {group}")
        audit_id = apply_plan(settings, plan)
    if output == "json":
        click.echo(
            render.as_json({**plan.as_dict(), "executed": opts.execute, "audit_id": audit_id})
        )
        return
    click.echo(render.plan_csv(plan) if opts.export else render.reset_plan(plan))
    for line in render.reset_notes(plan, executed=opts.execute):
        click.echo(line, err=True)
    if audit_id is not None:
        click.echo(f"audit record {audit_id}", err=True)


def _delete(group: str, output: str) -> None:
    from mmstream.ops.reset import delete as remove

    settings = _settings()
    announce(settings, f"deleting group {group}")
    audit_id = remove(settings, group)
    click.echo(
        render.as_json({"group": group, "deleted": True, "audit_id": audit_id})
        if output == "json"
        else f"Deletion of requested consumer groups ('{group}') was successful. "
        f"(audit record {audit_id})"
    )


def _delete_offsets(group: str, topics: tuple[str, ...], output: str) -> None:
    from mmstream.ops.reset import delete_offsets

    if not topics:
        raise click.UsageError(
            "--delete-offsets needs --topic T (repeatable; T:0,2 for some partitions)"
        )
    settings = _settings()
    announce(settings, f"deleting committed offsets of group {group}")
    done = delete_offsets(settings, group, list(topics))
    if output == "json":
        click.echo(render.as_json(done.as_dict()))
        return
    click.echo(render.deleted_offsets(done))


# ---- the Kafka tool's spelling: actions as flags ---------------------------------------

_ACTIONS = ("list", "describe", "reset_offsets", "delete", "delete_offsets")


def _reset_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The reset scope and targets, named as kafka-consumer-groups.sh names them; the
    command receives them as one ``opts: ResetOptions``."""
    names = [field.name for field in fields(ResetOptions)]

    @functools.wraps(f)
    def command(*args: Any, **kwargs: Any) -> Any:
        opts = ResetOptions(**{name: kwargs.pop(name) for name in names})
        return f(*args, opts=opts, **kwargs)

    for decorator in reversed(
        [
            click.option(
                "--all-topics",
                is_flag=True,
                help="Every partition the group has committed offsets on.",
            ),
            click.option(
                "--topic",
                "topics",
                multiple=True,
                help="Topic (physical, or as named in the topic file); repeatable; "
                "TOPIC:0,2 for some partitions.",
            ),
            click.option("--to-earliest", is_flag=True, help="To the log start."),
            click.option("--to-latest", is_flag=True, help="To the end (skip everything)."),
            click.option(
                "--to-current",
                is_flag=True,
                help="To the committed offset (the end where there is none).",
            ),
            click.option("--to-offset", type=int, help="To offset N on every chosen partition."),
            click.option(
                "--shift-by", type=int, help="Move the committed offset by N (negative: back)."
            ),
            click.option(
                "--to-datetime",
                help="To the first record at/after an ISO time with offset "
                "(2025-01-31T09:00:00+03:00).",
            ),
            click.option("--by-duration", help="To the first record at/after now minus e.g. PT1H."),
            click.option(
                "--from-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="A CSV plan (topic,partition,offset or group,topic,partition,offset), "
                "as --export writes it.",
            ),
            click.option("--dry-run", is_flag=True, help="Only show the plan (the default)."),
            click.option("--execute", is_flag=True, help="Apply the plan (audited)."),
            click.option(
                "--export",
                is_flag=True,
                help="Print the plan as CSV (topic,partition,offset) for --from-file.",
            ),
        ]
    ):
        command = decorator(command)
    return command


@click.group(invoke_without_command=True, no_args_is_help=True)
@connection_options
@click.option("--list", "list_", is_flag=True, help="(Kafka spelling) = groups list.")
@click.option("--describe", is_flag=True, help="(Kafka spelling) = groups describe.")
@click.option("--reset-offsets", is_flag=True, help="(Kafka spelling) = groups reset.")
@click.option("--delete", is_flag=True, help="(Kafka spelling) = groups delete.")
@click.option("--delete-offsets", is_flag=True, help="(Kafka spelling) = groups delete-offsets.")
@click.option("--group", "groups_", multiple=True, help="The consumer group.")
@_reset_options
@click.option(
    "--timeout", type=int, hidden=True, help="Accepted for the Kafka tool's argument lists."
)
@output_option
@click.pass_context
def groups(
    ctx: click.Context,
    list_: bool,
    describe: bool,
    reset_offsets: bool,
    delete: bool,
    delete_offsets: bool,
    groups_: tuple[str, ...],
    opts: ResetOptions,
    timeout: int | None,
    output: str,
) -> None:
    """Consumer groups: state, members, committed offsets and lag; offset resets.

    Also takes kafka-consumer-groups.sh's own argument list, e.g. `mmctl groups
    --bootstrap-server HOST:9092 --group G --reset-offsets --all-topics --to-earliest
    --dry-run` (the same as `mmctl groups reset --group G --all-topics --to-earliest`).
    """
    actions = [
        a
        for a, on in zip(
            _ACTIONS, (list_, describe, reset_offsets, delete, delete_offsets), strict=True
        )
        if on
    ]
    if ctx.invoked_subcommand is not None:
        if actions:
            raise click.UsageError(
                f"--{actions[0].replace('_', '-')} is the Kafka tool's spelling "
                f"of a subcommand: use one or the other"
            )
        return
    if len(actions) != 1:
        raise click.UsageError(
            "Command must include exactly one action: --list, --describe, "
            "--delete, --reset-offsets, --delete-offsets (or a subcommand)"
        )
    action = actions[0]
    if action == "list":
        _list(output)
        return
    group = _one_group(None, groups_)
    if action == "describe":
        _describe(group, output)
    elif action == "delete":
        _delete(group, output)
    elif action == "delete_offsets":
        _delete_offsets(group, opts.topics, output)
    else:
        _reset(group, opts, output)


# ---- mmctl's spelling: subcommands -------------------------------------------------------


@groups.command("list")
@connection_options
@output_option
def list_groups(output: str) -> None:
    """Every group with its state, member count, topics and total lag."""
    _list(output)


@groups.command("describe")
@connection_options
@click.argument("group_arg", metavar="[GROUP]", required=False)
@click.option("--group", "groups_", multiple=True, help="The consumer group (or give it as GROUP).")
@output_option
def describe_group(group_arg: str | None, groups_: tuple[str, ...], output: str) -> None:
    """Committed offset, log end and lag per partition, with the owning member — the columns
    of kafka-consumer-groups.sh --describe. On stderr: the state, lag per entity type, and a
    bound on the time since the last commit.

    Kafka does not tell when an offset was committed. The report gives the age of the
    newest record the group committed past: the commit came later, so the time since the
    last commit that moved the offset is at most that.
    """
    _describe(_one_group(group_arg, groups_), output)


@groups.command("reset")
@connection_options
@click.argument("group_arg", metavar="[GROUP]", required=False)
@click.option("--group", "groups_", multiple=True, help="The consumer group (or give it as GROUP).")
@_reset_options
@output_option
def reset(group_arg: str | None, groups_: tuple[str, ...], opts: ResetOptions, output: str) -> None:
    """Show, or with --execute apply, an offset reset of a group on --all-topics or the
    --topic(s) named. The plan has kafka-consumer-groups.sh's columns (GROUP TOPIC PARTITION
    NEW-OFFSET); --export prints it as CSV and --from-file reads one back.

    Refused while the group has live members. Applied resets are written to the audit
    trail (who — MM_OPS__ACTOR, required outside the embedded stack —, when, before/after
    offsets), after the cluster acted on is printed. Offsets outside the log are clamped.
    """
    _reset(_one_group(group_arg, groups_), opts, output)


@groups.command("delete")
@connection_options
@click.argument("group_arg", metavar="[GROUP]", required=False)
@click.option("--group", "groups_", multiple=True, help="The consumer group (or give it as GROUP).")
@output_option
def delete_group(group_arg: str | None, groups_: tuple[str, ...], output: str) -> None:
    """Delete a group and its committed offsets (refused while it has live members; audited)."""
    _delete(_one_group(group_arg, groups_), output)


@groups.command("delete-offsets")
@connection_options
@click.argument("group_arg", metavar="[GROUP]", required=False)
@click.option("--group", "groups_", multiple=True, help="The consumer group (or give it as GROUP).")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Topic (physical, or as named in the topic file); repeatable; TOPIC:0,2.",
)
@output_option
def delete_offsets_cmd(
    group_arg: str | None, groups_: tuple[str, ...], topics: tuple[str, ...], output: str
) -> None:
    """Delete a group's committed offsets on some topics (refused while it has live
    members; audited). The group then starts those partitions by its auto.offset.reset."""
    _delete_offsets(_one_group(group_arg, groups_), topics, output)
