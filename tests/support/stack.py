"""Fixtures that run the pipeline's processes for a test: registry (per session), and per
test a Bitrix24 emulator, the bridge and the Faust workers, on random ports, topics and
groups. Registered from tests/conftest.py via ``pytest_plugins``."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from connectors.ingress.auth import mint_token
from devstack.stack.env import settings_env
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from tests.support.processes import Proc, eventually, wait_http

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def registry_url(databases, tmp_path_factory):
    """A schema registry process for the session (its own database)."""
    logs = tmp_path_factory.mktemp("registry")
    port = free_port()
    proc = Proc(
        "registry",
        ["registry", "--port", str(port)],
        {"MM_DATABASE_URL": databases.create(), "MM_LOG_LEVEL": "INFO"},
        logs,
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc)
    yield url
    proc.stop()


class Pipeline:
    """The processes of one test and helpers to drive and observe them."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: dict[str, Proc] = {}
        self.token = mint_token(settings.auth, subject="onec-test", roles=["1c"])
        apply(settings, load_catalog(settings.topics_file))

    # -- processes ---------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        # An operator's name for the audited commands (mmctl reconcile --repair, dlq replay)
        # the tests run as people would.
        return {
            **settings_env(self.settings),
            "MM_LOG_LEVEL": "INFO",
            "MM_OPS__ACTOR": "e2e-operator",
        }

    def _start(self, name: str, args: list[str]) -> Proc:
        proc = Proc(name, args, self.env, self.log_dir).start()
        self.procs[name] = proc
        return proc

    def start_emulator(self) -> Pipeline:
        port = self.settings.embedded.bitrix24_port
        proc = self._start("bitrix24", ["emulate", "bitrix24", "--port", str(port)])
        wait_http(f"{self.emulator_url}/health", proc)
        return self

    def start_onec_emulator(self) -> Pipeline:
        """The 1С emulator (HTTP service + OData) that ``settings.onec`` points at."""
        port = self.settings.embedded.onec_port
        proc = self._start("onec", ["emulate", "onec", "--port", str(port)])
        wait_http(f"{self.onec_url}/health", proc)
        return self

    def start_bridge(self) -> Pipeline:
        proc = self._start("bridge", ["bridge"])
        wait_http(f"{self.bridge_url}/health/ready", proc)
        return self

    def start_sink(self, name: str = "sink", *, metrics_port: int = 0) -> Proc:
        """A sink worker (the entity sink: every entity, products included); give each one
        its own ``name`` to run several in one group."""
        return self._start(name, ["worker", "sink-entities", "--metrics-port", str(metrics_port)])

    def start_entity_sink(self) -> Proc:
        return self._start("sink-entities", ["worker", "sink-entities", "--metrics-port", "0"])

    def start_egress(self, name: str = "egress", *, metrics_port: int = 0) -> Proc:
        """An egress worker; give each one its own ``name`` to run several in one group."""
        return self._start(name, ["worker", "egress", "--metrics-port", str(metrics_port)])

    def start_all(self) -> Pipeline:
        self.start_emulator()
        self.start_sink()
        self.start_egress()
        self.start_bridge()
        return self

    def stop(self, grace_s: float = 15.0) -> None:
        """Graceful stop of every process (SIGKILL after ``grace_s``). SIGTERM goes to all
        of them first: their shutdowns (seconds each for a Faust worker) overlap instead of
        adding up in every test's teardown."""
        signalled = [p for p in self.procs.values() if p.send(signal.SIGTERM)]
        deadline = time.monotonic() + grace_s
        for proc in signalled:
            proc.wait_ended(max(0.1, deadline - time.monotonic()))

    def assert_alive(self) -> None:
        """Fail at once (with the logs) when a process the test started has died."""
        dead = [n for n, p in self.procs.items() if not p.alive() and not p.stopped]
        if dead:
            raise AssertionError(f"processes died: {dead}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{p.tail(60)}" for n, p in self.procs.items())

    # -- bridge ------------------------------------------------------------------------
    @property
    def bridge_url(self) -> str:
        return f"http://{self.settings.ingress.host}:{self.settings.ingress.port}"

    def post_product(self, record: dict, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.post(
            f"{self.bridge_url}/v1/onec/products",
            json=record,
            headers=headers,
            timeout=30,
            **kwargs,
        )

    def post_onec(self, object_name: str, record: dict, **kwargs) -> httpx.Response:
        """POST one 1С record of any object (``Склады``, ``ЗаказКлиента``...) to the bridge."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.post(
            f"{self.bridge_url}/v1/onec/{object_name}",
            json=record,
            headers=headers,
            timeout=30,
            **kwargs,
        )

    # -- emulator ----------------------------------------------------------------------
    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.embedded.bitrix24_port}"

    def emulator_calls(self, method: str | None = None) -> list[dict]:
        calls = httpx.get(f"{self.emulator_url}/_emulator/calls", timeout=10).json()
        return [c for c in calls if method is None or c["method"] == method]

    def emulator_products(self) -> list[dict]:
        return httpx.get(f"{self.emulator_url}/_emulator/products", timeout=10).json()

    def inject_fault(self, **fault) -> None:
        httpx.post(
            f"{self.emulator_url}/_emulator/faults", json=fault, timeout=10
        ).raise_for_status()

    @property
    def onec_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.embedded.onec_port}"

    def onec_calls(self) -> list[dict]:
        """The requests the 1С emulator served, oldest first."""
        return httpx.get(f"{self.onec_url}/_emulator/calls", timeout=10).json()

    def inject_onec_fault(self, **fault) -> None:
        httpx.post(f"{self.onec_url}/_emulator/faults", json=fault, timeout=10).raise_for_status()

    # -- database ----------------------------------------------------------------------
    def sql(self, query: str, *params) -> list[tuple]:
        url = self.settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            return conn.execute(query, params).fetchall()

    def wait_sql(self, query: str, predicate, timeout_s: float = 60.0, *params):
        def check():
            self.assert_alive()
            rows = self.sql(query, *params)
            return rows if predicate(rows) else None

        try:
            return eventually(check, timeout_s, message=query)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None


def wait_for(stack: Pipeline, what: str, probe, timeout_s: float = 60, interval_s: float = 0.3):
    """``probe()``'s first truthy answer, failing at once (with every process's log) when a
    process of ``stack`` died, or after ``timeout_s``."""

    def check():
        stack.assert_alive()
        return probe()

    try:
        return eventually(check, timeout_s, interval_s=interval_s, message=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


@pytest.fixture
def pipeline(settings, registry_url, tmp_path):
    """A Pipeline whose processes are stopped (and logs shown on failure) after the test."""
    settings = settings.model_copy(
        update={
            "schema_registry_url": registry_url,
            "ingress": settings.ingress.model_copy(update={"port": free_port()}),
            "embedded": settings.embedded.model_copy(
                update={"bitrix24_port": free_port(), "onec_port": free_port()}
            ),
        }
    )
    bx = settings.bitrix24.model_copy(
        update={
            "webhook_url": type(settings.bitrix24.webhook_url)(
                # 32 random hex characters: egress refuses a short or placeholder webhook code.
                f"http://127.0.0.1:{settings.embedded.bitrix24_port}/rest/1/{uuid.uuid4().hex}/"
            ),
            "rate_per_s": 50.0,
            "timeout_s": 5.0,
        }
    )
    onec = settings.onec.model_copy(
        update={
            "base_url": f"http://127.0.0.1:{settings.embedded.onec_port}/trade/hs/mm/",
            "timeout_s": 5.0,
        }
    )
    settings = settings.model_copy(update={"bitrix24": bx, "onec": onec})
    pipe = Pipeline(settings, tmp_path)
    yield pipe
    pipe.stop()


def onec_product(ref: str | None = None, version: str = "AAAAAQAAAAA=", **overrides) -> dict:
    """A Номенклатура record shaped like the real OData fixture, with a fresh Ref_Key."""
    doc = json.loads(
        (FIXTURES / "onec_odata" / "bp30_Catalog_Nomenklatura.json").read_text("utf-8")
    )
    record = dict(doc["value"][0])
    record["Ref_Key"] = ref or str(uuid.uuid4())
    record["DataVersion"] = version
    record.update(overrides)
    return record
