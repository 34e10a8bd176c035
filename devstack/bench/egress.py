"""Egress benchmark: how many Bitrix24 commands per second ONE egress worker
(``mmctl worker egress``) gets through to the Bitrix24 emulator, against the same run's

* packed-client ceiling - the Bitrix24 client sending full ``batch`` calls (50 lookups
                          each) as fast as the portal's budget lets it: the most any
                          egress can carry at that budget.

Two targets: the default portal budget (2 requests/s, burst 50) and an unlimited one.
The egress topic is pre-filled with product changes in the relay's format (JSON canonical
product, outbox id and CloudEvents headers) for products new to the portal, so each
change costs two commands (lookup by xmlId, create). Rates are taken from the emulator's
call log over the steady part (after the burst is spent and the first 10 % of commands),
with the count of 503 answers in that window.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import httpx
import psycopg

from connectors.bitrix24.batch import MAX_COMMANDS, Command, execute
from connectors.bitrix24.client import Bitrix24Client
from devstack.bench.pipeline import pg_dsn
from devstack.bench.processes import BenchError, check_alive, mmctl, wait_http
from devstack.bench.processes import attempt as run_attempt
from devstack.bench.producing import produce_all
from devstack.bench.report import Measurement, Series
from devstack.bench.services import BenchServices
from devstack.bench.workload import RawRecord
from mmstream.serve import free_port
from mmstream.settings import Settings
from stages.outbox.relay import OUTBOX_ID

UNLIMITED = 100_000.0


@dataclass(frozen=True)
class EgressParams:
    records: int  # product changes per run of the worker
    ceiling_s: float  # how long the packed-client ceiling runs
    repetitions: int
    timeout_s: float


def egress_records(n: int) -> list[RawRecord]:
    """``n`` product changes as the sink's relay publishes them."""
    out = []
    for i in range(n):
        pid = str(uuid.uuid4())
        payload = {
            "id": pid,
            "name": f"Товар {i}",
            "code": f"{i:09d}",
            "full_name": "",
            "deleted": False,
            "version": "AAAAAQ==",
            "event_id": str(uuid.uuid4()),
        }
        headers = [
            ("ce_id", payload["event_id"].encode()),
            ("ce_specversion", b"1.0"),
            ("ce_type", b"ru.mastermobile.product.upsert.v1"),
            (OUTBOX_ID, str(i + 1).encode()),
        ]
        out.append(
            RawRecord(pid.encode(), json.dumps(payload, ensure_ascii=False).encode(), headers)
        )
    return out


@dataclass(frozen=True)
class Window:
    commands_per_s: float
    requests_per_s: float
    status_503: int


def steady_window(calls: list[dict], burst: int) -> Window:
    """Rates over the calls after the burst and the first 10 % of commands."""
    requests = sorted((c for c in calls if not c["in_batch"]), key=lambda c: c["ts"])
    commands = sorted((c for c in calls if c["in_batch"]), key=lambda c: c["ts"])
    if len(requests) < 4 or len(commands) < 10:
        raise BenchError(f"too few calls to measure ({len(requests)} requests)")
    skip_req = min(len(requests) // 2, burst)
    start = max(requests[skip_req]["ts"], commands[len(commands) // 10]["ts"])
    end = requests[-1]["ts"]
    if end <= start:
        raise BenchError("no steady window: the run ended inside the burst")
    in_window = [c for c in commands if start < c["ts"] <= end]
    reqs = [c for c in requests if start < c["ts"] <= end]
    return Window(
        len(in_window) / (end - start),
        len(reqs) / (end - start),
        sum(1 for c in reqs if c["status"] == 503),
    )


class Emulator:
    """A Bitrix24 emulator child at the given budget."""

    def __init__(
        self, services: BenchServices, settings: Settings, rate: float, burst: int, label: str
    ) -> None:
        self.port = free_port()
        hook = f"http://127.0.0.1:{self.port}/rest/1/bench{uuid.uuid4().hex[:6]}/"
        bx = settings.bitrix24.model_copy(
            update={
                "webhook_url": type(settings.bitrix24.webhook_url)(hook),
                "rate_per_s": rate,
                "burst": burst,
                "budget_workers": 1,
            }
        )
        self.settings = settings.model_copy(update={"bitrix24": bx})
        self.child = services.children.add(
            mmctl(
                label,
                [
                    "emulate",
                    "bitrix24",
                    "--port",
                    str(self.port),
                    "--rate",
                    str(rate),
                    "--burst",
                    str(burst),
                ],
                services.child_env(self.settings),
                services.log_dir,
            ).start()
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.url}/health", self.child)

    def calls(self) -> list[dict]:
        return httpx.get(f"{self.url}/_emulator/calls", timeout=60).json()

    def products(self) -> int:
        return len(httpx.get(f"{self.url}/_emulator/products", timeout=60).json())

    def stop(self) -> None:
        self.child.stop()


def run_worker(
    services: BenchServices,
    settings: Settings,
    rate: float,
    burst: int,
    params: EgressParams,
    label: str,
) -> Window:
    """One egress worker draining ``params.records`` product changes; its steady rates."""
    db = services.new_database("egress")
    s = services.settings(database_url=db)
    s = s.model_copy(
        update={
            "streams": s.streams.model_copy(
                update={"egress_group": f"bench-egress-{uuid.uuid4().hex[:8]}"}
            )
        }
    )
    services.create_topics(s)
    emu = Emulator(services, s, rate, burst, f"{label}-bitrix24")
    try:
        produce_all(
            emu.settings,
            emu.settings.topic("egress.bitrix24.product"),
            egress_records(params.records),
        )
        worker = services.children.add(
            mmctl(
                label,
                ["worker", "egress", "--metrics-port", "0"],
                services.child_env(emu.settings),
                services.log_dir,
            ).start()
        )
        try:
            deadline = time.monotonic() + params.timeout_s
            with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
                while True:
                    check_alive(worker)
                    done = conn.execute("SELECT count(*) FROM egress_delivery").fetchone()[0]
                    if done >= params.records:
                        break
                    if time.monotonic() > deadline:
                        raise BenchError(
                            f"egress delivered {done}/{params.records} in "
                            f"{params.timeout_s:.0f}s; " + worker.excerpt()
                        )
                    time.sleep(0.5)
        finally:
            worker.stop()
        if emu.products() != params.records:
            raise BenchError(
                f"wrong result: {emu.products()} products in the portal, "
                f"expected {params.records} (a duplicate create?)"
            )
        return steady_window(emu.calls(), burst)
    finally:
        emu.stop()
        services.drop_database(db)


def run_ceiling(
    services: BenchServices,
    settings: Settings,
    rate: float,
    burst: int,
    params: EgressParams,
    label: str,
) -> Window:
    """The Bitrix24 client alone sending full 50-command batches for ``ceiling_s``."""
    emu = Emulator(services, services.settings(), rate, burst, f"{label}-bitrix24")
    try:

        async def drive() -> None:
            client = Bitrix24Client(emu.settings.bitrix24)
            try:
                stop = time.monotonic() + params.ceiling_s
                lookups = {
                    str(i): Command(
                        "catalog.product.list",
                        {"select": ["id"], "filter": {"xmlId": str(uuid.uuid4())}},
                    )
                    for i in range(MAX_COMMANDS)
                }
                while time.monotonic() < stop:
                    # Two in flight, as the egress packer allows.
                    await asyncio.gather(execute(client, lookups), execute(client, lookups))
            finally:
                await client.aclose()

        asyncio.run(drive())
        return steady_window(emu.calls(), burst)
    finally:
        emu.stop()


def run(services: BenchServices, params: EgressParams, say) -> list[Measurement]:
    """Egress commands/s at the default budget and unlimited, next to the client ceiling."""
    settings = services.settings()
    default_rate, default_burst = settings.bitrix24.rate_per_s, settings.bitrix24.burst
    out: list[Measurement] = []
    for mode, rate, burst in (
        ("default budget", default_rate, default_burst),
        ("unlimited target", UNLIMITED, 100_000),
    ):
        worker, ceiling = Series(f"egress worker, {mode}"), Series(f"packed client, {mode}")
        requests, errors = (
            Series(f"egress requests/s, {mode}"),
            Series(f"503 after warm-up, {mode}"),
        )

        def attempt(series, fn, what):
            return run_attempt(series, fn, what, say)

        for rep in range(params.repetitions):
            tag = f"[{rep + 1}/{params.repetitions}] {mode}:"
            c = attempt(
                [ceiling],
                lambda r=rate, b=burst, n=rep: run_ceiling(
                    services, settings, r, b, params, f"egress-ceiling-{n}"
                ),
                "packed client",
            )
            if c:
                ceiling.samples.append(c.commands_per_s)
                say(
                    f"  {tag} packed client {c.commands_per_s:8,.1f} commands/s "
                    f"({c.requests_per_s:.2f} requests/s)"
                )
            w = attempt(
                [worker, requests, errors],
                lambda r=rate, b=burst, n=rep: run_worker(
                    services, settings, r, b, params, f"egress-{n}"
                ),
                "egress worker",
            )
            if w:
                worker.samples.append(w.commands_per_s)
                requests.samples.append(w.requests_per_s)
                errors.samples.append(w.status_503)
                say(
                    f"  {tag} egress worker {w.commands_per_s:8,.1f} commands/s "
                    f"({w.requests_per_s:.2f} requests/s, {w.status_503} x 503 after warm-up)"
                )
        key = "default" if rate == default_rate else "unlimited"
        out.append(
            Measurement(
                f"egress.{key}.commands_per_s",
                f"egress Bitrix24 commands/s, {mode}",
                "commands/s",
                worker,
                ceiling,
                notes=[
                    f"budget {rate:g} requests/s, burst {burst}; goal at the default budget: "
                    f">= 95 % of {default_rate:g} x {MAX_COMMANDS} commands/s",
                    f"egress requests/s (median): {requests.value}, 503 answers after warm-up "
                    f"(median): {errors.value}",
                ],
            )
        )
    return out
