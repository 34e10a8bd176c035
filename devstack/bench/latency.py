"""End-to-end latency benchmark: 1С POST -> Bitrix24 call, at a steady load.

The whole product path runs as under ``mmctl run``: the bridge, one sink worker (table,
outbox, relay to the egress topic), one egress worker and the Bitrix24 emulator at the
default portal budget. A load thread posts new products at a fixed rate, well under what
the budget carries; for each product the latency is the time from sending its POST to the
emulator executing the ``catalog.product.add`` that creates it (both clocks are this
machine's). The baseline, from the same requests, is the POST -> 202 time: what accepting
costs, against which the rest of the path (Kafka, PostgreSQL, relay, batching to the
portal's budget) shows as the ratio.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import httpx
import psycopg

from devstack.bench.egress import Emulator
from devstack.bench.pipeline import pg_dsn
from devstack.bench.processes import BenchError, check_alive, mmctl, wait_http
from devstack.bench.processes import attempt as run_attempt
from devstack.bench.report import Measurement, Series
from devstack.bench.services import BenchServices
from devstack.bench.workload import V1, record_for, template_record
from mmstream.serve import free_port


@dataclass(frozen=True)
class LatencyParams:
    rate_per_s: float  # products posted per second
    duration_s: float  # of steady load (after the warm-up)
    warmup: int  # products posted and delivered before measuring
    repetitions: int
    timeout_s: float


@dataclass(frozen=True)
class LatencyRun:
    end_to_end_ms: list[float]  # POST sent -> catalog.product.add executed, per product
    accept_ms: list[float]  # POST sent -> 202 received, same products
    achieved_rate: float  # products actually posted per second


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        raise BenchError("no samples")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def add_times(calls: list[dict]) -> dict[str, float]:
    """xmlId -> time the emulator executed the (first successful) product create."""
    out: dict[str, float] = {}
    for call in calls:
        if call["method"] != "catalog.product.add" or call["status"] != 200:
            continue
        params = call.get("params") or {}
        fields = params.get("fields") if isinstance(params, dict) else None
        xml_id = fields.get("xmlId") if isinstance(fields, dict) else None
        if xml_id and xml_id not in out:
            out[str(xml_id)] = call["ts"]
    return out


class _Poster:
    """Posts products to the bridge at a fixed rate from one thread (one HTTP client)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.template = template_record()
        self.sent: dict[str, float] = {}
        self.accepted_ms: dict[str, float] = {}
        self.error: str | None = None

    def post(self, number: int) -> str:
        ref = str(uuid.uuid4())
        body = record_for(self.template, ref, V1, number)
        started = time.time()
        resp = self.client.post(self.url, json=body)
        if resp.status_code != 202:
            raise BenchError(f"the bridge answered {resp.status_code}: {resp.text[:200]}")
        self.sent[ref] = started
        self.accepted_ms[ref] = (time.time() - started) * 1000
        return ref

    def steady(self, rate: float, duration_s: float, first: int) -> list[str]:
        refs: list[str] = []
        interval, start = 1.0 / rate, time.monotonic()
        n = 0
        while (due := start + n * interval) < start + duration_s:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            refs.append(self.post(first + n))
            n += 1
        return refs

    def close(self) -> None:
        self.client.close()


def _wait_delivered(db: str, expected: int, timeout_s: float, workers) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
        while True:
            for worker in workers:
                check_alive(worker)
            done = conn.execute("SELECT count(*) FROM egress_delivery").fetchone()[0]
            if done >= expected:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{done}/{expected} products reached Bitrix24 in {timeout_s:.0f}s; "
                    + " ".join(w.excerpt() for w in workers)
                )
            time.sleep(0.2)


def run_once(services: BenchServices, params: LatencyParams, label: str) -> LatencyRun:
    """One full stack, a warm-up, then ``duration_s`` of steady posting."""
    from connectors.ingress.auth import mint_token

    db = services.new_database("latency")
    s = services.settings(database_url=db, ingress_port=free_port())
    s = s.model_copy(
        update={
            "streams": s.streams.model_copy(
                update={"egress_group": f"bench-egress-{uuid.uuid4().hex[:8]}"}
            )
        }
    )
    services.create_topics(s)
    bx = s.bitrix24
    emu = Emulator(services, s, bx.rate_per_s, bx.burst, f"{label}-bitrix24")
    children = []
    poster: _Poster | None = None
    try:
        env = services.child_env(emu.settings)
        for name, args in (
            ("sink", ["worker", "sink-entities", "--metrics-port", "0"]),
            ("egress", ["worker", "egress", "--metrics-port", "0"]),
            ("bridge", ["bridge"]),
        ):
            children.append(
                services.children.add(mmctl(f"{label}-{name}", args, env, services.log_dir).start())
            )
        bridge_url = f"http://127.0.0.1:{s.ingress.port}"
        wait_http(f"{bridge_url}/health/ready", children[-1])
        token = mint_token(s.auth, subject="bench-latency", roles=["1c"], ttl_s=3600)
        poster = _Poster(f"{bridge_url}/v1/onec/products", token)
        for i in range(params.warmup):
            poster.post(i)
        _wait_delivered(db, params.warmup, params.timeout_s, children)
        warm = set(poster.sent)

        failure: list[BaseException] = []

        def load() -> None:
            try:
                poster.steady(params.rate_per_s, params.duration_s, params.warmup)
            except BaseException as exc:  # noqa: BLE001 — re-raised in the bench thread
                failure.append(exc)

        thread = threading.Thread(target=load, daemon=True)
        began = time.monotonic()
        thread.start()
        thread.join(params.duration_s + params.timeout_s)
        if failure:
            raise failure[0]
        if thread.is_alive():
            raise BenchError("the load thread did not finish")
        posted = [ref for ref in poster.sent if ref not in warm]
        achieved = len(posted) / (time.monotonic() - began)
        _wait_delivered(db, params.warmup + len(posted), params.timeout_s, children)
        executed = add_times(emu.calls())
        missing = [ref for ref in posted if ref not in executed]
        if missing:
            raise BenchError(
                f"{len(missing)} delivered products have no catalog.product.add "
                f"in the emulator's log (e.g. {missing[0]})"
            )
        return LatencyRun(
            [(executed[ref] - poster.sent[ref]) * 1000 for ref in posted],
            [poster.accepted_ms[ref] for ref in posted],
            achieved,
        )
    finally:
        if poster is not None:
            poster.close()
        for child in reversed(children):
            child.stop()
        emu.stop()
        services.drop_database(db)


def run(services: BenchServices, params: LatencyParams, say) -> list[Measurement]:
    """p50/p99 of 1С POST -> Bitrix24 create, next to POST -> 202 of the same requests."""
    e2e = {q: Series(f"1С POST -> Bitrix24 create, {q}") for q in ("p50", "p99")}
    accept = {q: Series(f"1С POST -> 202 accepted, {q}") for q in ("p50", "p99")}
    rates = Series("posted products/s")
    for rep in range(params.repetitions):
        result = run_attempt(
            [*e2e.values(), *accept.values()],
            lambda n=rep: run_once(services, params, f"latency-{n}"),
            "end-to-end latency",
            say,
        )
        if not result:
            continue
        for q, value in (("p50", 0.50), ("p99", 0.99)):
            e2e[q].samples.append(round(quantile(result.end_to_end_ms, value), 1))
            accept[q].samples.append(round(quantile(result.accept_ms, value), 1))
        rates.samples.append(result.achieved_rate)
        say(
            f"  [{rep + 1}/{params.repetitions}] {len(result.end_to_end_ms)} products at "
            f"{result.achieved_rate:.1f}/s: end to end p50 {e2e['p50'].samples[-1]:,.0f} ms, "
            f"p99 {e2e['p99'].samples[-1]:,.0f} ms (accepted: p50 {accept['p50'].samples[-1]:.0f} ms)"
        )
    note = (
        f"steady load {params.rate_per_s:g} new products/s for {params.duration_s:g} s after "
        f"{params.warmup} warm-up products; achieved (median) {rates.value} /s; each product "
        "costs two Bitrix24 commands (lookup by xmlId, create) packed into batch calls at the "
        "default portal budget"
    )
    return [
        Measurement(
            f"latency.{q}_ms",
            f"end-to-end latency {q}, 1С POST -> Bitrix24 call",
            "ms",
            e2e[q],
            accept[q],
            higher_is_better=False,
            notes=[note],
        )
        for q in ("p50", "p99")
    ]
