"""``mmctl``: the one command line of MasterMobile Stream (the Makefile wraps it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mmstream import log
from mmstream.cli.connection import apply, connection_options, use_env_file
from mmstream.errors import MMStreamError
from mmstream.secrets_policy import SecretRole
from mmstream.settings import Settings, get_settings, masked_config


def _exit_status(exc: MMStreamError) -> int:
    """2 when the invocation is wrong (settings, arguments, a request that cannot be carried
    out as given: nothing was tried), 1 when the world said no (broker or database down,
    group active or missing, a failed write) — as the Kafka tools split usage from failure."""
    from mmstream.errors import ConfigurationError
    from mmstream.ops.errors import InvalidResetSpec
    from stages.dlq.errors import ReplayRefused

    return 2 if isinstance(exc, ConfigurationError | InvalidResetSpec | ReplayRefused) else 1


class _Group(click.Group):
    """Prints project errors as one clear line instead of a traceback: exit 2 for usage
    and settings errors, 1 for runtime errors (``_exit_status``)."""

    def invoke(self, ctx: click.Context):
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        try:
            return super().invoke(ctx)
        except MMStreamError as exc:
            click.echo(f"mmctl: {exc}", err=True)
            sys.exit(_exit_status(exc))
        except ValidationError as exc:
            # Named fields and reasons only: pydantic's own message repeats the input, which
            # may be a secret.
            reasons = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            click.echo(f"mmctl: invalid settings: {reasons}", err=True)
            sys.exit(2)
        except SettingsError as exc:
            click.echo(f"mmctl: invalid settings: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mastermobile-stream", prog_name="mmctl")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read MM_* settings from this dotenv file too (the environment wins). "
    "Without it mmctl reads no .env, not even one in the current folder.",
)
@connection_options
def cli(env_file: Path | None) -> None:
    """MasterMobile Stream: 1С <-> Kafka <-> Bitrix24. Settings come from MM_* variables
    (and --env-file); --bootstrap-server / --command-config pick the Kafka cluster as the
    Kafka tools do, here or on each Kafka command. Exit status: 0 ok, 1 runtime error
    (broker or database unreachable, group active ...), 2 usage or settings error."""
    use_env_file(env_file)
    apply(click.get_current_context())


def _settings(service: str) -> Settings:
    settings = get_settings()
    log.setup(service, settings.log_level, settings.log_format)
    return settings


def _production_settings(service: str, role: SecretRole) -> Settings:
    """The settings of a long-running production process, refused (exit 2, naming the
    setting) when a secret it relies on is a development, placeholder or short value — before
    anything connects (design.md invariant 11)."""
    settings = get_settings()
    settings.check_secrets(role)
    log.setup(service, settings.log_level, settings.log_format)
    return settings


# Whose secrets each worker relies on (Settings.check_secrets): the sinks only the broker's
# and the database's; egress and enrichment also the portal's (and egress 1С's).
_WORKER_SECRETS: dict[str, SecretRole] = {
    "sink-entities": "sink",
    "egress": "egress",
    "enrich-bitrix24": "enrich",
}


@cli.command()
@click.option("--host", default=None, help="Listen address (default from MM_INGRESS__HOST).")
@click.option("--port", type=int, default=None, help="Listen port (default from MM_INGRESS__PORT).")
def bridge(host: str | None, port: int | None) -> None:
    """Run the ingress HTTP bridge."""
    from connectors.ingress.app import create_app
    from mmstream.serve import serve

    settings = _production_settings("bridge", "bridge")
    serve(
        create_app(settings),
        host or settings.ingress.host,
        port or settings.ingress.port,
        "ingress bridge",
        "MM_INGRESS__PORT",
    )


@cli.command()
@click.argument("role", type=click.Choice(["sink-entities", "egress", "enrich-bitrix24"]))
@click.option("--metrics-port", type=int, default=None, help="Prometheus port (0: off).")
def worker(role: str, metrics_port: int | None) -> None:
    """Run a Faust worker: the entity sink (every raw topic, products included), the
    Bitrix24 egress or the Bitrix24 enrichment."""
    from stages import worker as workers

    settings = _production_settings(f"worker-{role}", _WORKER_SECRETS[role])
    port = settings.streams.metrics_port if metrics_port is None else metrics_port
    from mmstream.topics import load_catalog
    from stages.readers import require_readers

    try:  # every declared topic has a reader, or no worker starts (invariant 10)
        require_readers(load_catalog(settings.topics_file))
    except MMStreamError as exc:
        raise SystemExit(f"mmctl: refusing to start worker {role}: {exc}") from None
    if role == "enrich-bitrix24":
        from stages.enrich.worker import run as run_enrich

        run_enrich(settings, port)
        return
    if role == "sink-entities":
        from stages.sink.entity_worker import build_entity_sink

        workers.run(build_entity_sink(settings), settings, port)
        return
    workers.run(workers.build_egress(settings), settings, port)


@cli.group()
def poll() -> None:
    """Pollers that pull changes from source systems (lossless paths)."""


@poll.command("onec-odata")
def poll_onec_odata() -> None:
    """Pull the configured entity sets from 1С's standard OData interface (MM_ODATA__*)."""
    from connectors.onec.odata.runner import run_poller

    run_poller(_production_settings("odata-poller", "poll-odata"))


@cli.command()
def migrate() -> None:
    """Apply database migrations (Alembic) to DATABASE_URL."""
    from mmstream.db.migrate import upgrade

    settings = _settings("mmctl")
    upgrade(settings.require_database_url(), settings.migrations_dir)
    click.echo("database is at the latest migration")


@cli.command()
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["1c", "courier", "admin"]),
    required=True,
    help="Role(s) to grant; repeat for several.",
)
@click.option("--subject", default="dev", help="Who the token is for (sub claim).")
@click.option("--ttl", type=int, default=3600, help="Lifetime in seconds.")
def token(roles: tuple[str, ...], subject: str, ttl: int) -> None:
    """Mint a bearer token for the bridge (signed with MM_AUTH__JWT_SECRET)."""
    from connectors.ingress.auth import mint_token

    click.echo(mint_token(get_settings().auth, subject=subject, roles=list(roles), ttl_s=ttl))


@cli.command("config")
def show_config() -> None:
    """Print the effective settings (secrets masked, credentials in URLs too)."""
    click.echo(json.dumps(masked_config(get_settings()), indent=2, ensure_ascii=False))


from mmstream.cli.dlq import dlq  # noqa: E402 — its own module; imports its work lazily

cli.add_command(dlq)

from mmstream.cli.trace import trace  # noqa: E402 — its own module; imports its work lazily

cli.add_command(trace)

from mmstream.cli.groups import groups  # noqa: E402 — its own module; imports its work lazily

cli.add_command(groups)
# kafka-consumer-groups.sh's argument list, unchanged, after `mmctl kafka-consumer-groups`.
cli.add_command(groups, "kafka-consumer-groups")

from mmstream.cli.topics import topics  # noqa: E402 — its own module; imports its work lazily

cli.add_command(topics)

from mmstream.cli.health import health  # noqa: E402 — its own module; imports its work lazily

cli.add_command(health)

from mmstream.cli.schemas import schemas  # noqa: E402 — its own module; imports its work lazily

cli.add_command(schemas)

from mmstream.cli.export import export  # noqa: E402 — its own module; imports its work lazily

cli.add_command(export)

from mmstream.cli.reconcile import reconcile  # noqa: E402 — its own module; imports its work lazily

cli.add_command(reconcile)


def _add_plugin_commands(group: click.Group) -> None:
    """Commands other installed distributions contribute under the ``mmctl.commands`` entry-point
    group: the development package (devstack) adds ``run``, ``bench``, ``registry`` and
    ``emulate`` this way, so the runtime wheel neither contains nor imports it."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="mmctl.commands"):
        if ep.name not in group.commands:  # a plugin never replaces a production command
            group.add_command(ep.load(), ep.name)


_add_plugin_commands(cli)

if __name__ == "__main__":
    cli()
