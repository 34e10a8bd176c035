"""``mmctl health``: one answer about every dependency; exit 1 when anything is down."""

from __future__ import annotations

import sys

import click

from mmstream import log
from mmstream.cli.output import output_option
from mmstream.ops import render
from mmstream.ops.health import CHECKS
from mmstream.settings import get_settings


@click.command()
@output_option
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds each check may take (they run in parallel).",
)
@click.option(
    "--check",
    "names",
    multiple=True,
    metavar="NAME",
    type=click.Choice(CHECKS),
    help="Run only this check (repeatable); a worker's readiness probe runs its targets' checks.",
)
@click.option(
    "--metrics-url",
    "metrics_urls",
    multiple=True,
    help="An egress worker's /metrics to read circuit states from (repeatable; "
    "default MM_OPS__CIRCUIT_METRICS_URLS or the embedded egress worker).",
)
def health(
    output: str, timeout_s: float, names: tuple[str, ...], metrics_urls: tuple[str, ...]
) -> None:
    """Broker, database, schema registry, targets (Bitrix24, 1С) and circuit states.

    Exit status: 0 when nothing is down (degraded counts as up), 1 otherwise.
    """
    from mmstream.ops.health import DOWN, overall, run_checks

    settings = get_settings()
    log.setup("mmctl", "ERROR", settings.log_format)
    checks = run_checks(settings, timeout_s, list(metrics_urls), names)
    status = overall(checks)
    if output == "json":
        click.echo(render.as_json({"status": status, "checks": [c.as_dict() for c in checks]}))
    else:
        click.echo(
            render.table(
                ["CHECK", "STATUS", "MS", "TARGET", "DETAIL"],
                [[c.name, c.status, c.latency_ms, c.target, c.detail] for c in checks],
            )
        )
        click.echo(f"overall: {status}")
    sys.exit(1 if status == DOWN else 0)
