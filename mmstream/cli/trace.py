"""``mmctl trace ID``: the timeline of one entity from any of its ids (mmstream/trace/timeline.py)."""

from __future__ import annotations

import click

from mmstream.cli.output import output_option


def render_table(timeline: dict) -> str:
    """The timeline as text: the ids it resolved, then one line per step."""
    lines = [
        f"trace {timeline['query']}",
        f"  entity ids:  {', '.join(timeline['entity_ids']) or '-'}",
        f"  event ids:   {', '.join(timeline['event_ids']) or '-'}",
        f"  request ids: {', '.join(timeline['request_ids']) or '-'}",
    ]
    for ext in timeline["external_ids"]:
        lines.append(
            f"  {ext['system']} {ext['entity']}: {ext['canonical_id']} = {ext['external_id']}"
        )
    if not timeline["steps"]:
        lines.append("nothing recorded for this id (retention may have purged it)")
    for step in timeline["steps"]:
        lines.append(f"{(step['at'] or '-'):32}  {step['kind']:9}  {step['summary']}")
    return "\n".join(lines)


@click.command("trace")
@click.argument("ident")
@click.option(
    "--dlq/--no-dlq",
    "read_dlq",
    default=True,
    show_default=True,
    help="Also scan the DLQ topics (needs the broker; slower).",
)
@output_option
def trace(ident: str, read_dlq: bool, output: str) -> None:
    """Everything that happened to one entity: ingress, versions, outbox, egress calls with
    their answers, parks, DLQ records and replays. IDENT: a 1С GUID, a Bitrix24 id, a
    canonical id, an event id (ce_id) or a request id (X-Request-Id). Read-only."""
    import asyncio

    from mmstream import log
    from mmstream.db.engine import async_engine
    from mmstream.ops.render import as_json
    from mmstream.settings import get_settings
    from mmstream.trace.timeline import collect, dlq_rows

    settings = get_settings()
    log.setup("mmctl-trace", "WARNING", settings.log_format)

    async def run() -> dict:
        engine = async_engine(settings, pool_size=1)
        try:
            found = await collect(engine, ident, dlq=dlq_rows(settings) if read_dlq else None)
            return found.as_dict()
        finally:
            await engine.dispose()

    timeline = asyncio.run(run())
    click.echo(as_json(timeline) if output == "json" else render_table(timeline))
