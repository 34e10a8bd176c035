"""The development commands of ``mmctl``: ``run`` (the embedded stack), ``bench``, ``registry``
(the development schema registry) and ``emulate`` (Bitrix24 and 1С emulators).

They are registered under the ``mmctl.commands`` entry-point group (devstack/pyproject.toml),
which mmstream/cli/main.py loads: the runtime package never imports devstack, and an install
without it (the production image) simply has no such commands.
"""

from __future__ import annotations

import click

from mmstream import log
from mmstream.settings import Settings, get_settings


def _settings(service: str) -> Settings:
    settings = get_settings()
    log.setup(service, settings.log_level, settings.log_format)
    return settings


def _production_settings(service: str, role) -> Settings:
    """As mmctl's production commands: refuse development secrets outside the embedded
    profile (Settings.check_secrets) before anything connects."""
    settings = get_settings()
    settings.check_secrets(role)
    log.setup(service, settings.log_level, settings.log_format)
    return settings


def _embedded(settings: Settings) -> Settings:
    """Mark settings as the embedded stack's: its children (settings_env carries MM_PROFILE)
    may run on the development secrets."""
    return settings.model_copy(update={"profile": "embedded"})


@click.command()
@click.option("--no-demo", is_flag=True, help="Do not feed the demo load.")
@click.option("--workers", type=int, default=None, help="Sink workers to start (default 1).")
def run(no_demo: bool, workers: int | None) -> None:
    """Start the embedded stack in the foreground; Ctrl-C stops everything it started."""
    from devstack.stack.supervisor import run_stack

    settings = _embedded(get_settings())
    log.setup("mmctl-run", "WARNING", "console")  # the console is for the status line
    run_stack(
        settings,
        demo=settings.embedded.demo and not no_demo,
        workers=workers or settings.embedded.workers,
    )


@click.group()
def emulate() -> None:
    """Local emulators of the systems we talk to."""


@emulate.command("bitrix24")
@click.option("--port", type=int, default=None)
@click.option("--rate", type=float, default=None, help="Requests/s the portal allows (default 2).")
@click.option("--burst", type=int, default=None, help="Bucket size (default 50).")
def emulate_bitrix24(port: int | None, rate: float | None, burst: int | None) -> None:
    """Emulate a Bitrix24 portal's REST API (webhook from MM_BITRIX24__WEBHOOK_URL)."""
    from urllib.parse import urlsplit

    from devstack.emulators.bitrix24 import create_app
    from mmstream.serve import serve

    settings = _settings("emulator-bitrix24")
    path = urlsplit(settings.bitrix24.webhook_url.get_secret_value()).path
    oauth = settings.bitrix24.oauth  # the emulator accepts the configured OAuth application
    app = create_app(
        webhook_path=path,
        rate_per_s=rate or settings.bitrix24.rate_per_s,
        burst=burst or settings.bitrix24.burst,
        **(
            {
                "oauth_client_id": oauth.client_id,
                "oauth_client_secret": oauth.client_secret.get_secret_value(),
            }
            if oauth.client_id
            else {}
        ),
    )
    serve(
        app,
        "127.0.0.1",
        port or settings.embedded.bitrix24_port,
        "Bitrix24 emulator",
        "MM_EMBEDDED__BITRIX24_PORT",
    )


@emulate.command("onec")
@click.option("--port", type=int, default=None)
def emulate_onec(port: int | None) -> None:
    """Emulate a 1С base: standard OData catalog reads and the integration HTTP service."""
    from devstack.emulators.onec.app import create_app
    from mmstream.serve import serve

    settings = _settings("emulator-onec")
    # Basic auth on the emulated OData only when a password is configured (as a real
    # publication would have one); the dev default has none.
    password = settings.odata.password.get_secret_value()
    service_password = settings.onec.password.get_secret_value()
    app = create_app(
        username=settings.odata.username if password else None,
        password=password or None,
        service_username=settings.onec.username if service_password else None,
        service_password=service_password or None,
    )
    serve(
        app,
        "127.0.0.1",
        port or settings.embedded.onec_port,
        "1С emulator",
        "MM_EMBEDDED__ONEC_PORT",
    )


@click.command()
@click.option("--port", type=int, default=None)
def registry(port: int | None) -> None:
    """Serve the Confluent-compatible schema registry API (backed by PostgreSQL)."""
    from devstack.registry.app import create_app
    from mmstream.serve import serve

    settings = _production_settings("schema-registry", "registry")
    reg = settings.registry
    auth = (
        (
            reg.basic_auth_username,
            reg.basic_auth_password.get_secret_value() if reg.basic_auth_password else "",
        )
        if reg.basic_auth_username
        else None
    )
    serve(
        create_app(settings.require_database_url(), basic_auth=auth),
        "127.0.0.1",
        port or settings.embedded.registry_port,
        "schema registry",
        "MM_EMBEDDED__REGISTRY_PORT",
    )


@click.command()
@click.option("--out", default="bench-results", help="Folder for the JSON report.")
@click.option("--quick", is_flag=True, help="Smaller loads (a smoke run).")
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(["pipeline", "entities", "ingress", "egress", "latency"]),
    help="Run only this section (repeatable); default: all.",
)
def bench(out: str, quick: bool, only: tuple[str, ...]) -> None:
    """Run the benchmarks; prints and writes a JSON report with ratios to baselines."""
    from devstack.bench.runner import run_benchmarks

    # A development tool on its own services: its children run as the embedded stack's.
    settings = _embedded(get_settings())
    log.setup("bench", "WARNING", "console")
    run_benchmarks(settings, out_dir=out, quick=quick, only=set(only))
