"""``mmctl dlq``: list, show and replay dead-letter records; list past replays.

Reading a DLQ assigns its partitions by hand and never commits, so it leaves no consumer
group behind. Replays preview by default; ``--execute`` publishes (acks=all) and writes
the audit row. Output goes to stdout (``--output json`` for scripts); progress of long
scans goes to stderr.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from mmstream.cli.output import output_option as _OUTPUT


class _IsoTime(click.ParamType):
    name = "ISO-8601"

    def convert(self, value, param, ctx) -> datetime:
        from mmstream.dlq.entry import parse_time

        if isinstance(value, datetime):
            return value
        parsed = parse_time(value)
        if parsed is None:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-22T04:00:00Z)", param, ctx)
        return parsed


def _selection_options(func: Callable) -> Callable:
    options = [
        click.option("--reason", metavar="CODE", help="Only this error code (see `dlq list`)."),
        click.option("--entity", metavar="KEY", help="Only records with this key (entity id)."),
        click.option(
            "--since", type=_IsoTime(), help="Dead-lettered at or after (UTC if no zone)."
        ),
        click.option("--until", type=_IsoTime(), help="Dead-lettered before (UTC if no zone)."),
        click.option("--partition", type=click.IntRange(min=0), help="Only this DLQ partition."),
        click.option("--offset", type=click.IntRange(min=0), help="Only this DLQ offset."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _selection(reason, entity, since, until, partition, offset):
    from stages.dlq.select import Selection

    if since and until and since >= until:
        raise click.UsageError("--since must be before --until")
    return Selection(
        reason=reason, entity=entity, since=since, until=until, partition=partition, offset=offset
    )


def _progress(label: str):
    """A stderr progress counter (shared with the other operator commands) and the
    ``progress(done, total)`` callback the DLQ reader and publisher call."""
    from mmstream.cli.output import Counter

    counter = Counter(label)

    def update(done: int, total: int | None) -> None:
        counter.total = total
        counter.add(done - counter.count)

    return counter, update


def _context():
    from mmstream import log
    from mmstream.settings import get_settings
    from mmstream.topics import load_catalog

    settings = get_settings()
    log.setup("mmctl-dlq", "WARNING", settings.log_format)
    return settings, load_catalog(settings.topics_file)


def _scan(settings, topic: str, selection, limit: int | None = None):
    """Selected entries of ``topic``, warning on stderr when the scan stopped short."""
    from mmstream.dlq.reader import DlqReader

    reader = DlqReader(settings, topic)
    counter, progress = _progress(f"scanning {topic}")
    try:
        entries = list(selection.filter(reader.scan(progress), limit))
    finally:
        counter.done()
    if reader.state.incomplete:
        click.echo(
            f"warning: {topic}: partitions {reader.state.incomplete} stopped short of their "
            "end (no data for a while); the answer may be incomplete",
            err=True,
        )
    return entries


@click.group()
def dlq() -> None:
    """Dead-letter topics: what is parked and why, and replaying it where it failed."""


# -- list ----------------------------------------------------------------------------------
@dlq.command("list")
@click.argument("topic", required=False)
@click.option("--all", "all_topics", is_flag=True, help="Every DLQ topic of topics.yaml (default).")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Entities with the most records to show.",
)
@_OUTPUT
def list_cmd(topic: str | None, all_topics: bool, top: int, output: str) -> None:
    """Count DLQ records by reason (stage, error code) and by entity."""
    from mmstream.dlq.reader import DlqReader
    from mmstream.dlq.topics import dlq_topics, resolve
    from mmstream.errors import TopicMissing
    from mmstream.ops import dlq_render as render
    from mmstream.ops.render import as_json
    from stages.dlq.summary import TopicSummary, summarize

    if topic and all_topics:
        raise click.UsageError("name a TOPIC or give --all, not both")
    settings, catalog = _context()
    names = [resolve(settings, catalog, topic)] if topic else dlq_topics(settings, catalog)
    summaries: list[TopicSummary | str] = []
    for name in names:
        reader = DlqReader(settings, name)
        counter, progress = _progress(f"scanning {name}")
        try:
            summary = summarize(name, reader.scan(progress), top=top)
            summary.incomplete_partitions = reader.state.incomplete
            summaries.append(summary)
        except TopicMissing:
            if topic:
                raise
            summaries.append(name)  # declared, not on the cluster: say so, keep going
        finally:
            counter.done()
    if output == "json":
        click.echo(
            as_json(
                [
                    s.as_dict() if not isinstance(s, str) else {"topic": s, "missing": True}
                    for s in summaries
                ]
            )
        )
        return
    for s in summaries:
        click.echo(
            f"{s}: missing on the cluster (run `mmctl topics apply`)\n"
            if isinstance(s, str)
            else render.summary_text(s)
        )


# -- show ----------------------------------------------------------------------------------
@dlq.command("show")
@click.argument("topic")
@_selection_options
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Records to show at most.",
)
@_OUTPUT
def show_cmd(
    topic: str, reason, entity, since, until, partition, offset, limit: int, output: str
) -> None:
    """Show DLQ records: headers, failure metadata and the payload, pretty-printed."""
    from mmstream.dlq.topics import resolve
    from mmstream.ops import dlq_render as render
    from mmstream.ops.render import as_json

    settings, catalog = _context()
    name = resolve(settings, catalog, topic)
    selection = _selection(reason, entity, since, until, partition, offset)
    entries = _scan(settings, name, selection, limit + 1)
    more, entries = len(entries) > limit, entries[:limit]
    if output == "json":
        click.echo(as_json([render.entry_json(e) for e in entries]))
        return
    for entry in entries:
        click.echo(render.entry_text(entry))
    click.echo(
        f"{len(entries)} record(s) shown"
        + (f"; more match (raise --limit above {limit})" if more else "")
    )


# -- replay --------------------------------------------------------------------------------
@dlq.command("replay")
@click.argument("topic")
@click.option("--all", "everything", is_flag=True, help="Replay every record of the topic.")
@_selection_options
@click.option(
    "--patch",
    "patch_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="RFC 6902 JSON Patch applied to each (JSON) payload before publishing.",
)
@click.option("--execute", is_flag=True, help="Publish. Without it, only show what would be sent.")
@_OUTPUT
def replay_cmd(
    topic: str,
    everything: bool,
    reason,
    entity,
    since,
    until,
    partition,
    offset,
    patch_file: Path | None,
    execute: bool,
    output: str,
) -> None:
    """Publish DLQ records back to the topic they failed at (preview unless --execute).

    The original key, bytes and headers go to the source topic and partition, without the
    dlq.* headers and with an mm.replay header (replay id, DLQ coordinates). Every stage
    dedupes, so replaying the same records twice changes nothing the second time.
    """
    from sqlalchemy import create_engine, text

    from mmstream.dlq.topics import resolve
    from mmstream.kafka.admin import admin_client, existing_topics
    from mmstream.ops import dlq_render as render
    from mmstream.ops.render import as_json
    from mmstream.ops.reset import require_actor
    from stages.dlq import history
    from stages.dlq.payload import load_patch
    from stages.dlq.replay import build_plan, publish

    selection = _selection(reason, entity, since, until, partition, offset)
    if everything == (not selection.empty):
        raise click.UsageError(
            "choose what to replay: --all, or filters "
            "(--reason/--entity/--since/--until/--partition/--offset), not both"
        )
    settings, catalog = _context()
    name = resolve(settings, catalog, topic)
    patch = load_patch(patch_file) if patch_file else None
    engine = (
        create_engine(settings.require_database_url(), pool_pre_ping=True)
        if execute or settings.database_url
        else None
    )
    try:
        if engine is not None and execute:
            with engine.connect() as conn:  # the audit must be writable before anything is sent
                conn.execute(text("SELECT 1 FROM ops_audit LIMIT 1"))
        entries = _scan(settings, name, selection)
        plan = build_plan(
            settings,
            catalog,
            existing_topics(admin_client(settings)),
            name,
            entries,
            selection,
            patch=patch,
        )
        earlier = _earlier_replays(engine, plan, strict=execute)
        result = {
            "replay_id": plan.replay_id,
            "dlq_topic": name,
            "executed": execute,
            "selection": plan.selection.describe() or {"all": True},
            "records": len(plan.items),
            "destinations": plan.destinations(),
            "earlier_replays": earlier,
        }
        if output == "table":
            click.echo(render.plan_text(plan, earlier))
        if execute and plan.items:
            if engine is None:  # made above whenever --execute is given: a bug otherwise
                raise RuntimeError("dlq replay --execute: no database engine for the audit trail")
            who = require_actor(settings)
            counter, progress = _progress(f"publishing replay {plan.replay_id[:8]}")
            try:
                delivered = asyncio.run(publish(settings, plan, progress))
            except Exception as exc:
                # Part of the plan may be written: say so in the audit trail, then fail.
                history.record_replay(engine, who, plan, [], outcome="failed", error=str(exc)[:500])
                raise
            finally:
                counter.done()
            result["audit_id"] = history.record_replay(engine, who, plan, delivered)
            result["actor"] = who
        if output == "json":
            click.echo(as_json(result))
        elif not execute:
            click.echo("preview only: nothing was published. Run again with --execute to publish.")
        elif plan.items:
            click.echo(
                f"published {len(plan.items)} record(s) with acks=all; replay id {plan.replay_id}; "
                f"audit entry #{result['audit_id']} by {result['actor']}"
            )
    finally:
        if engine is not None:
            engine.dispose()


def _earlier_replays(engine, plan, *, strict: bool) -> dict[str, int]:
    """Earlier replays of the same records; a preview does without them if the database
    is not reachable (an executed replay has already checked it)."""
    from sqlalchemy.exc import SQLAlchemyError

    from stages.dlq import history

    if engine is None:
        return {}
    try:
        return history.earlier_replays_of(engine, plan)
    except SQLAlchemyError as exc:
        if strict:
            raise
        click.echo(
            f"warning: cannot read the audit trail ({type(exc).__name__}); "
            "earlier replays not checked",
            err=True,
        )
        return {}


# -- audit ---------------------------------------------------------------------------------
@dlq.command("audit")
@click.argument("topic", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@_OUTPUT
def audit_cmd(topic: str | None, limit: int, output: str) -> None:
    """Past replays, newest first: who replayed what, when, and where it went."""
    from sqlalchemy import create_engine

    from mmstream.dlq.topics import resolve
    from mmstream.ops import dlq_render as render
    from mmstream.ops.render import as_json
    from stages.dlq import history

    settings, catalog = _context()
    name = resolve(settings, catalog, topic) if topic else None
    engine = create_engine(settings.require_database_url())
    try:
        rows = history.past_replays(engine, name, limit)
    finally:
        engine.dispose()
    click.echo(as_json(render.audit_json(rows)) if output == "json" else render.audit_text(rows))
