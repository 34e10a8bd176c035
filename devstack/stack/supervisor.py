"""`mmctl run`: the embedded stack in the foreground.

Starts the broker and PostgreSQL (unless configured to use existing ones), migrates,
creates the topics, starts the schema registry, the emulators, the bridge and the workers
as child processes, feeds the demo load and prints a live status line. Ctrl-C stops
everything it started, in reverse order. Every child is also told by the kernel to stop when
the supervisor dies (devstack.process), so even a SIGKILL or a crash leaves no process behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from devstack.process import Child, stop_all, wait_http
from devstack.stack.broker import EmbeddedBroker
from devstack.stack.console import say
from devstack.stack.dev_settings import follow_emulators, with_demo_portal
from devstack.stack.env import settings_env
from devstack.stack.postgres import EmbeddedPostgres
from devstack.stack.status import StatusBoard
from devstack.stack.status_page import StatusPage
from mmstream.db.migrate import upgrade
from mmstream.errors import ConfigurationError
from mmstream.kafka.admin import apply
from mmstream.serve import ensure_port_free, free_port
from mmstream.settings import Settings, mask_url
from mmstream.topics import load_catalog

log = logging.getLogger("mmctl.run")


def _child(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    return Child(name, args, env, log_dir).start()


def _wait_http(child: Child, url: str) -> None:
    wait_http(url, alive=child.alive, what=child.name, log_path=child.log_path)


def run_stack(settings: Settings, *, demo: bool, workers: int) -> None:
    """Run until Ctrl-C. Raises ConfigurationError (printed as one line) on start-up problems."""
    emb = settings.embedded
    emb.data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = emb.data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    stoppers: list = []
    children: list[Child] = []
    interrupted = False

    def on_signal(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)  # the terminal closed: stop in order as for Ctrl-C
    try:
        # Check every port first so a clash is reported before anything starts.
        ports = [
            (settings.ingress.host, settings.ingress.port, "ingress bridge", "MM_INGRESS__PORT"),
            ("127.0.0.1", emb.bitrix24_port, "Bitrix24 emulator", "MM_EMBEDDED__BITRIX24_PORT"),
            ("127.0.0.1", emb.onec_port, "1С emulator", "MM_EMBEDDED__ONEC_PORT"),
            ("127.0.0.1", emb.sink_metrics_port, "sink metrics", "MM_EMBEDDED__SINK_METRICS_PORT"),
            (
                "127.0.0.1",
                emb.egress_metrics_port,
                "egress metrics",
                "MM_EMBEDDED__EGRESS_METRICS_PORT",
            ),
            (
                "127.0.0.1",
                emb.enrich_metrics_port,
                "enrichment metrics",
                "MM_EMBEDDED__ENRICH_METRICS_PORT",
            ),
            ("127.0.0.1", emb.status_port, "status page", "MM_EMBEDDED__STATUS_PORT"),
        ]
        for host, port, what, setting in ports:
            ensure_port_free(host, port, what, setting)

        updates: dict = {}
        kafka = settings.kafka
        if "bootstrap_servers" not in kafka.model_fields_set:
            broker = EmbeddedBroker(emb.kafka_port, log_path=log_dir / "broker.log").start()
            stoppers.append(broker.stop)
            kafka = kafka.model_copy(
                update={
                    "bootstrap_servers": broker.bootstrap,
                    "replication_factor": 1,
                    "session_timeout_s": 3.0,
                    "heartbeat_interval_s": 0.5,
                    "rebalance_timeout_s": 3.0,
                }
            )
            _say(f"Kafka      embedded Tansu broker on {broker.bootstrap} (memory only)")
        else:
            _say(f"Kafka      {kafka.bootstrap_servers}")
        updates["kafka"] = kafka
        if settings.commerceml.password is None:
            # Without a password the 1С exchange is off; the development stack keeps it on
            # (with its scratch files under the data folder).
            from pydantic import SecretStr

            cml_dev = {"password": SecretStr("dev-only-commerceml")}
            if "work_dir" not in settings.commerceml.model_fields_set:
                cml_dev["work_dir"] = emb.data_dir / "commerceml"
            updates["commerceml"] = settings.commerceml.model_copy(update=cml_dev)
        if settings.database_url is None:
            pg = EmbeddedPostgres(emb.data_dir / "postgres", emb.postgres_port).start()
            stoppers.append(pg.stop)
            from pydantic import SecretStr

            updates["database_url"] = SecretStr(pg.url("postgres"))
            _say(
                f"PostgreSQL embedded on 127.0.0.1:{emb.postgres_port}, data in "
                f"{pg.data_dir if pg.relocated else emb.data_dir / 'postgres'}"
            )
            if pg.relocated:
                _say(
                    f"           (linked from {pg.requested_dir}: its folder is private, and the server's"
                    " own user cannot enter it; deleting the link discards the data)"
                )
        # The clients follow the emulators' ports; the demo plays the portal and its couriers.
        settings = follow_emulators(settings.model_copy(update=updates))
        if demo:
            settings = with_demo_portal(settings)
        db_url = settings.require_database_url()
        if settings.database_url is not None and "database_url" not in updates:
            _say(f"PostgreSQL {mask_url(db_url)}")
        upgrade(db_url, settings.migrations_dir)
        created = apply(settings, load_catalog(settings.topics_file))
        _say(f"Topics     {len(created.create)} created, {len(created.ok)} present (topics.yaml)")

        env = settings_env(settings)
        if not settings.schema_registry_url:
            ensure_port_free(
                "127.0.0.1", emb.registry_port, "schema registry", "MM_EMBEDDED__REGISTRY_PORT"
            )
            reg = _child("registry", ["registry", "--port", str(emb.registry_port)], env, log_dir)
            children.append(reg)
            settings = settings.model_copy(
                update={"schema_registry_url": f"http://127.0.0.1:{emb.registry_port}"}
            )
            env = settings_env(settings)
            _wait_http(reg, f"{settings.schema_registry_url}/health")
            _say(f"Registry   {settings.schema_registry_url} (Confluent-compatible API)")

        bx = _child(
            "bitrix24", ["emulate", "bitrix24", "--port", str(emb.bitrix24_port)], env, log_dir
        )
        onec = _child("onec", ["emulate", "onec", "--port", str(emb.onec_port)], env, log_dir)
        children += [bx, onec]
        _wait_http(bx, f"http://127.0.0.1:{emb.bitrix24_port}/health")
        _wait_http(onec, f"http://127.0.0.1:{emb.onec_port}/health")
        _say(
            f"Emulators  Bitrix24 http://127.0.0.1:{emb.bitrix24_port}  1С http://127.0.0.1:{emb.onec_port}"
        )

        # Every worker serves metrics (the status page adds them up); extra sinks on free ports.
        # One sink for every entity, products included: ``workers`` of them share its group.
        sink_ports = [emb.sink_metrics_port, *(free_port() for _ in range(workers - 1))]
        sinks = [
            _child(
                "sink-entities" if i == 0 else f"sink-entities-{i}",
                ["worker", "sink-entities", "--metrics-port", str(port)],
                env,
                log_dir,
            )
            for i, port in enumerate(sink_ports)
        ]
        egress = _child(
            "egress",
            ["worker", "egress", "--metrics-port", str(emb.egress_metrics_port)],
            env,
            log_dir,
        )
        enrich = _child(
            "enrich-bitrix24",
            ["worker", "enrich-bitrix24", "--metrics-port", str(emb.enrich_metrics_port)],
            env,
            log_dir,
        )
        bridge = _child("bridge", ["bridge"], env, log_dir)
        children += [*sinks, egress, enrich, bridge]
        if settings.odata.enabled:
            children.append(_child("odata-poller", ["poll", "onec-odata"], env, log_dir))
        bridge_url = f"http://{settings.ingress.host}:{settings.ingress.port}"
        _wait_http(bridge, f"{bridge_url}/health/ready")
        _say(f"Bridge     {bridge_url}  (OpenAPI: {bridge_url}/docs)")
        bx_poll = (
            f" with its DATE_MODIFY poller every {settings.bitrix24.poll_interval_s:g} s"
            if settings.bitrix24.poll_enabled
            else ""
        )
        _say(
            f"Workers    {workers} entity sink, 1 egress, 1 Bitrix24 enrichment{bx_poll}"
            f"{', 1 1С OData poller' if settings.odata.enabled else ''}  (logs in {log_dir})"
        )
        worker_metrics = [
            f"http://127.0.0.1:{port}/metrics"
            for port in (*sink_ports, emb.egress_metrics_port, emb.enrich_metrics_port)
        ]
        onec_emulator = f"http://127.0.0.1:{emb.onec_port}"
        page = StatusPage(
            [f"{bridge_url}/metrics", *worker_metrics], onec_emulator_url=onec_emulator
        )
        _say(
            f"Status     http://127.0.0.1:{emb.status_port}/status  (charts: throughput, lag, DLQ)"
        )
        _say("Ctrl-C stops everything.\n")

        board = StatusBoard(settings, bridge_url, worker_metrics, onec_emulator)
        asyncio.run(
            _foreground(
                settings, bridge_url, board, children, demo, page=page, page_port=emb.status_port
            )
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # Nothing here may raise before the children are stopped: _say never does, even when
        # stdout is a pipe whose reader is gone (`| tee` ended by the same Ctrl-C).
        if children or stoppers:
            _say("\nstopping…" if interrupted else "stopping…")
        stop_all(children)
        for stop in reversed(stoppers):
            stop()
        if children or stoppers:
            _say("stopped.")


async def _foreground(
    settings: Settings,
    bridge_url: str,
    board,
    children: list[Child],
    demo: bool,
    *,
    page: StatusPage | None = None,
    page_port: int = 0,
) -> None:
    from devstack.stack.demo import DemoLoad

    tasks = [asyncio.create_task(board.run())]
    if page is not None:
        tasks.append(asyncio.create_task(page.serve("127.0.0.1", page_port)))
    if demo:
        from devstack.stack.demo_couriers import CourierDemo

        tasks.append(asyncio.create_task(DemoLoad(settings, bridge_url).run()))
        tasks.append(asyncio.create_task(CourierDemo(settings, bridge_url).run()))
    try:
        while True:
            for child in children:  # a crashed child stops the stack, with its log named
                if child.popen.poll() is not None:
                    raise ConfigurationError(
                        f"{child.name} exited with code {child.popen.returncode}; "
                        f"see {child.log_path}"
                    )
            await asyncio.sleep(0.5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        board.close()


def _say(line: str) -> None:
    say(line)
