"""``mmctl reconcile [ENTITY…]``: compare PostgreSQL with Bitrix24 and 1С and (``--repair``)
repair the drift through the pipeline (stages/reconcile/job.py).

Exit codes: 0 no drift left (none found, or every one repaired), 3 drift found (not
repaired, or some repair could not be made), 1 runtime errors, 2 usage/settings errors —
so a CronJob or a script can tell "in step" from "look at this".
"""

from __future__ import annotations

import asyncio
import json
import sys

import click

from mmstream.cli.output import output_option

DRIFT_EXIT = 3


@click.command()
@click.argument("entities", nargs=-1)
@click.option(
    "--target",
    "target",
    type=click.Choice(["bitrix24", "onec"]),
    default=None,
    help="Compare with this system only (default: both).",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Repair what is found: re-publish through the outbox, or re-read from 1С "
    "(never a write to a target around the pipeline).",
)
@click.option(
    "--schedule",
    is_flag=True,
    help="Run every reconcile.interval_s until stopped (one replica at a time).",
)
@click.option(
    "--metrics-port", type=int, default=None, help="With --schedule: serve /metrics on this port."
)
@output_option
def reconcile(
    entities: tuple[str, ...],
    target: str | None,
    repair: bool,
    schedule: bool,
    metrics_port: int | None,
    output: str,
) -> None:
    """Find master data, delivery tasks and 1С documents (couriers' orders and returns, cash
    documents) out of step between PostgreSQL, Bitrix24 and 1С (and repair it)."""
    from mmstream import audit, log
    from mmstream.ops.reset import require_actor
    from mmstream.settings import get_settings
    from stages.reconcile.job import REPAIRED, TARGETS, run_once, run_scheduled

    settings = get_settings()
    log.setup("mmctl-reconcile", settings.log_level, settings.log_format)
    targets = [target] if target else list(TARGETS)
    # A person repairing names themself (MM_OPS__ACTOR, required outside the embedded
    # stack); the scheduled job and a read-only run record the process's user.
    who = require_actor(settings) if repair and not schedule else audit.actor(settings)
    if schedule:
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port)
        asyncio.run(run_scheduled(settings, repair=repair, actor=who))
        return
    report = asyncio.run(
        run_once(settings, entities=entities or None, targets=targets, repair=repair, actor=who)
    )
    if output == "json":
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        _table(report)
    repaired = {id(r.drift) for r in report.repairs if r.action in REPAIRED}
    if any(id(d) not in repaired for d in report.drifts):
        sys.exit(DRIFT_EXIT)


def _table(report) -> None:
    compared = ", ".join(f"{k}={v}" for k, v in sorted(report.compared.items()))
    click.echo(
        f"run {report.run_id}: compared {compared or 'nothing'}; "
        f"{len(report.drifts)} drift in {report.duration_s:.1f}s"
    )
    for note in report.errors:
        click.echo(f"note: {note}", err=True)
    if not report.drifts:
        return
    actions = {id(r.drift): r for r in report.repairs}
    rows = [("ENTITY", "TARGET", "KIND", "ID", "AT TARGET", "DETAIL", "REPAIR")]
    for d in report.drifts:
        r = actions.get(id(d))
        rows.append(
            (
                d.entity,
                d.target,
                d.kind,
                d.canonical_id,
                d.external_id or "-",
                d.detail,
                f"{r.action}: {r.detail}" if r else "-",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 2)]
    for row in rows:
        head = "  ".join(str(v).ljust(w) for v, w in zip(row[:-2], widths, strict=False))
        click.echo(f"{head}  {row[-2]}" + (f"  [{row[-1]}]" if row[-1] != "-" else ""))
