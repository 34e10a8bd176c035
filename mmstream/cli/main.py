"""``mmctl``: the one command line of MasterMobile Stream (the Makefile wraps it)."""

from __future__ import annotations

import json
import sys

import click

from mmstream import log
from mmstream.errors import MMStreamError
from mmstream.settings import SecretRole, Settings, get_settings, masked_config


class _Group(click.Group):
    """Prints project errors as one clear line (exit 2) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        try:
            return super().invoke(ctx)
        except MMStreamError as exc:
            click.echo(f"mmctl: {exc}", err=True)
            sys.exit(2)
        except ValidationError as exc:
            # Named fields and reasons only: pydantic's own message repeats the input, which
            # may be a secret.
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                for e in exc.errors(include_url=False, include_input=False))
            click.echo(f"mmctl: invalid settings: {reasons}", err=True)
            sys.exit(2)
        except SettingsError as exc:
            click.echo(f"mmctl: invalid settings: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """MasterMobile Stream: 1C <-> Kafka <-> Bitrix24. Settings come from MM_* variables."""


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
_WORKER_SECRETS: dict[str, SecretRole] = {"sink-entities": "sink",
                                          "egress": "egress", "enrich-bitrix24": "enrich"}


def _embedded(settings: Settings) -> Settings:
    """Mark settings as the embedded stack's: its children (settings_env carries MM_PROFILE)
    may run on the development secrets."""
    return settings.model_copy(update={"profile": "embedded"})


@cli.command()
@click.option("--no-demo", is_flag=True, help="Do not feed the demo load.")
@click.option("--workers", type=int, default=None, help="Sink workers to start (default 1).")
def run(no_demo: bool, workers: int | None) -> None:
    """Start the embedded stack in the foreground; Ctrl-C stops everything it started."""
    from mmstream.embedded.supervisor import run_stack

    settings = _embedded(get_settings())
    log.setup("mmctl-run", "WARNING", "console")  # the console is for the status line
    run_stack(settings, demo=settings.embedded.demo and not no_demo,
              workers=workers or settings.embedded.workers)


@cli.command()
@click.option("--host", default=None, help="Listen address (default from MM_INGRESS__HOST).")
@click.option("--port", type=int, default=None, help="Listen port (default from MM_INGRESS__PORT).")
def bridge(host: str | None, port: int | None) -> None:
    """Run the ingress HTTP bridge."""
    from connectors.ingress.app import create_app
    from mmstream.embedded.serve import serve

    settings = _production_settings("bridge", "bridge")
    serve(create_app(settings), host or settings.ingress.host, port or settings.ingress.port,
          "ingress bridge", "MM_INGRESS__PORT")


@cli.command()
@click.argument("role", type=click.Choice(["sink-entities", "egress", "enrich-bitrix24"]))
@click.option("--metrics-port", type=int, default=None, help="Prometheus port (0: off).")
def worker(role: str, metrics_port: int | None) -> None:
    """Run a Faust worker: the entity sink (every raw topic, products included), the
    Bitrix24 egress or the Bitrix24 enrichment."""
    from streams import worker as workers

    settings = _production_settings(f"worker-{role}", _WORKER_SECRETS[role])
    port = settings.streams.metrics_port if metrics_port is None else metrics_port
    from mmstream.topics import load_catalog
    from streams.readers import require_readers

    try:  # every declared topic has a reader, or no worker starts (invariant 10)
        require_readers(load_catalog(settings.topics_file))
    except MMStreamError as exc:
        raise SystemExit(f"mmctl: refusing to start worker {role}: {exc}") from None
    if role == "enrich-bitrix24":
        from streams.enrich.worker import run as run_enrich

        run_enrich(settings, port)
        return
    if role == "sink-entities":
        from streams.sink.entity_worker import build_entity_sink

        workers.run(build_entity_sink(settings), settings, port)
        return
    workers.run(workers.build_egress(settings), settings, port)


@cli.group()
def emulate() -> None:
    """Local emulators of the systems we talk to."""


@emulate.command("bitrix24")
@click.option("--port", type=int, default=None)
@click.option("--rate", type=float, default=None, help="Requests/s the portal allows (default 2).")
@click.option("--burst", type=int, default=None, help="Bucket size (default 50).")
def emulate_bitrix24(port: int | None, rate: float | None, burst: int | None) -> None:
    """Emulate a Bitrix24 portal's REST API (webhook from MM_BITRIX24__WEBHOOK_URL)."""
    from urllib.parse import urlsplit

    from connectors.bitrix24.emulator import create_app
    from mmstream.embedded.serve import serve

    settings = _settings("emulator-bitrix24")
    path = urlsplit(settings.bitrix24.webhook_url.get_secret_value()).path
    oauth = settings.bitrix24.oauth  # the emulator accepts the configured OAuth application
    app = create_app(webhook_path=path, rate_per_s=rate or settings.bitrix24.rate_per_s,
                     burst=burst or settings.bitrix24.burst,
                     **({"oauth_client_id": oauth.client_id,
                         "oauth_client_secret": oauth.client_secret.get_secret_value()}
                        if oauth.client_id else {}))
    serve(app, "127.0.0.1", port or settings.embedded.bitrix24_port, "Bitrix24 emulator",
          "MM_EMBEDDED__BITRIX24_PORT")


@emulate.command("onec")
@click.option("--port", type=int, default=None)
def emulate_onec(port: int | None) -> None:
    """Emulate a 1C base: standard OData catalog reads and the integration HTTP service."""
    from connectors.onec.emulator import create_app
    from mmstream.embedded.serve import serve

    settings = _settings("emulator-onec")
    # Basic auth on the emulated OData only when a password is configured (as a real
    # publication would have one); the dev default has none.
    password = settings.odata.password.get_secret_value()
    service_password = settings.onec.password.get_secret_value()
    app = create_app(username=settings.odata.username if password else None, password=password or None,
                     service_username=settings.onec.username if service_password else None,
                     service_password=service_password or None)
    serve(app, "127.0.0.1", port or settings.embedded.onec_port, "1C emulator", "MM_EMBEDDED__ONEC_PORT")


@cli.group()
def poll() -> None:
    """Pollers that pull changes from source systems (lossless paths)."""


@poll.command("onec-odata")
def poll_onec_odata() -> None:
    """Pull the configured entity sets from 1C's standard OData interface (MM_ODATA__*)."""
    from connectors.onec.odata.runner import run_poller

    run_poller(_production_settings("odata-poller", "poll-odata"))


@cli.command()
@click.option("--port", type=int, default=None)
def registry(port: int | None) -> None:
    """Serve the Confluent-compatible schema registry API (backed by PostgreSQL)."""
    from connectors.registry.app import create_app
    from mmstream.embedded.serve import serve

    settings = _production_settings("schema-registry", "registry")
    serve(create_app(settings.require_database_url()), "127.0.0.1",
          port or settings.embedded.registry_port, "schema registry", "MM_EMBEDDED__REGISTRY_PORT")


@cli.command()
def migrate() -> None:
    """Apply database migrations (Alembic) to DATABASE_URL."""
    from mmstream.db.migrate import upgrade

    settings = _settings("mmctl")
    upgrade(settings.require_database_url(), settings.migrations_dir)
    click.echo("database is at the latest migration")


@cli.group()
def topics() -> None:
    """Topics from the declarative topic file (topics.yaml)."""


@topics.command("diff")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit 1 when the cluster differs from the file (for CI).")
def topics_diff(output: str, exit_code: bool) -> None:
    """Compare the topic file with the cluster: missing topics, partition counts, configs,
    and undeclared topics in our namespaces. Changes nothing."""
    from mmstream.kafka.admin import KEY_ORDER_WARNING, admin_client, plan
    from mmstream.ops.render import as_json
    from mmstream.ops.topics import has_changes, plan_dict, plan_lines
    from mmstream.topics import load_catalog

    settings = _settings("mmctl")
    p = plan(settings, load_catalog(settings.topics_file), admin_client(settings))
    click.echo(as_json(plan_dict(p)) if output == "json" else "\n".join(plan_lines(p)))
    if p.grow:
        click.echo(f"warning: {KEY_ORDER_WARNING}", err=True)
    if exit_code and has_changes(p):
        sys.exit(1)


@topics.command("apply")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--no-increase", is_flag=True, help="Report partition increases, do not make them.")
@click.option("--allow-delete", is_flag=True,
              help="Also delete topics in our namespaces that the file does not declare.")
def topics_apply(output: str, no_increase: bool, allow_delete: bool) -> None:
    """Make the cluster match the topic file: create missing topics, increase partitions (with
    a warning about key ordering), set drifted configs. Never shrinks; never deletes without
    --allow-delete."""
    from mmstream.kafka.admin import KEY_ORDER_WARNING, admin_client, apply, plan
    from mmstream.ops.render import as_json
    from mmstream.ops.topics import plan_dict, plan_lines
    from mmstream.topics import load_catalog

    settings = _settings("mmctl")
    catalog, admin = load_catalog(settings.topics_file), admin_client(settings)
    if plan(settings, catalog, admin).grow and not no_increase:
        click.echo(f"warning: {KEY_ORDER_WARNING}", err=True)
    p = apply(settings, catalog, admin, increase_partitions=not no_increase, update_configs=True,
              allow_delete=allow_delete)
    if output == "json":
        click.echo(as_json({**plan_dict(p), "applied": True, "deleted": allow_delete}))
    else:
        click.echo("\n".join(["applied:", *plan_lines(p, allow_delete=allow_delete)]))


@cli.command()
@click.option("--role", "roles", multiple=True, type=click.Choice(["1c", "courier", "admin"]),
              required=True, help="Role(s) to grant; repeat for several.")
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


@cli.command()
@click.option("--out", default="bench-results", help="Folder for the JSON report.")
@click.option("--quick", is_flag=True, help="Smaller loads (a smoke run).")
@click.option("--only", "only", multiple=True,
              type=click.Choice(["pipeline", "entities", "ingress", "egress", "latency"]),
              help="Run only this section (repeatable); default: all.")
def bench(out: str, quick: bool, only: tuple[str, ...]) -> None:
    """Run the benchmarks; prints and writes a JSON report with ratios to baselines."""
    from mmstream.bench.runner import run_benchmarks

    # A development tool on its own services: its children run as the embedded stack's.
    settings = _embedded(get_settings())
    log.setup("bench", "WARNING", "console")
    run_benchmarks(settings, out_dir=out, quick=quick, only=set(only))


from mmstream.cli.dlq import dlq  # noqa: E402 — its own module; imports its work lazily

cli.add_command(dlq)

from mmstream.cli.trace import trace  # noqa: E402 — its own module; imports its work lazily

cli.add_command(trace)

from mmstream.cli.groups import groups  # noqa: E402 — its own module; imports its work lazily

cli.add_command(groups)

from mmstream.cli.health import health  # noqa: E402 — its own module; imports its work lazily

cli.add_command(health)

from mmstream.cli.schemas import schemas  # noqa: E402 — its own module; imports its work lazily

cli.add_command(schemas)

from mmstream.cli.export import export  # noqa: E402 — its own module; imports its work lazily

cli.add_command(export)

from mmstream.cli.reconcile import reconcile  # noqa: E402 — its own module; imports its work lazily

cli.add_command(reconcile)

if __name__ == "__main__":
    cli()
