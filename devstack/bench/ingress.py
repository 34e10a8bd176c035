"""Ingress benchmarks against the real bridge process, each next to a baseline from the
same run:

* single: one record per POST /v1/onec/products, bounded concurrency, requests/s and
  p50/p99 latency; baseline: a bare FastAPI app doing one acknowledged produce per
  request with the same AckedProducer, served the same way (baseline_app);
* batch: 500 records per POST /v1/onec/products/batch, records/s; baseline: the raw
  confluent-kafka producer producing the same number of records in-process and flushing.

Both servers run at the same time (an idle one costs nothing) so repetitions can be
interleaved: slow drift of the machine then hits bridge and baseline alike.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from devstack.bench.cpu import process_cpu_s
from devstack.bench.processes import BenchError, check_alive, mmctl, python_child, wait_http
from devstack.bench.producing import produce_all
from devstack.bench.report import Measurement, Series
from devstack.bench.services import BenchServices
from devstack.bench.workload import (
    PLACEHOLDER_REF,
    V1,
    encode,
    fresh_raw_records,
    record_for,
    template_record,
)
from devstack.process import Child
from mmstream.serve import free_port

RAW = "raw.onec.product"


@dataclass(frozen=True)
class IngressParams:
    single_requests: int
    batch_records: int
    repetitions: int
    warmup_requests: int
    single_concurrency: int = 32
    single_clients: int = 1  # load generator processes sharing the concurrency
    batch_size: int = 500
    batch_concurrency: int = 4
    timeout_s: float = 120.0


@dataclass(frozen=True)
class LoadResult:
    """One load run, merged over the generator processes."""

    requests: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Load:
    """Runs load generator processes against one URL and merges their results."""

    def __init__(
        self, services: BenchServices, template_path: Path, token_path: Path, params: IngressParams
    ) -> None:
        self.services = services
        self.template_path = template_path
        self.token_path = token_path
        self.params = params
        self._runs = 0

    def run(
        self,
        server: Child,
        url: str,
        *,
        count: int,
        concurrency: int,
        clients: int,
        batch_size: int,
        expect_status: int,
    ) -> LoadResult:
        self._runs += 1
        # Clients need ~0.3 s to import; they all start at the same wall-clock moment.
        start_at = time.time() + 1.0
        gens = []
        for i in range(clients):
            result = self.services.work_dir / f"load-{uuid.uuid4().hex}.json"  # never a stale one
            args = [
                "--url",
                url,
                "--count",
                str(count // clients + (1 if i < count % clients else 0)),
                "--concurrency",
                str(max(1, concurrency // clients)),
                "--template",
                str(self.template_path),
                "--batch-size",
                str(batch_size),
                "--token-file",
                str(self.token_path),
                "--start-at",
                f"{start_at:.3f}",
                "--result",
                str(result),
            ]
            gens.append(
                (
                    result,
                    self.services.children.add(
                        python_child(
                            f"loadgen-{self._runs}-{i}",
                            "devstack.bench.loadgen",
                            args,
                            {},
                            self.services.log_dir,
                        ).start()
                    ),
                )
            )
        cpu_before = process_cpu_s(server.pid)
        deadline = time.monotonic() + self.params.timeout_s
        try:
            while not all(path.exists() for path, _ in gens):
                check_alive(server)
                for path, gen in gens:
                    if not path.exists():
                        check_alive(gen)
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"load on {url} not done after {self.params.timeout_s:.0f}s; "
                        f"server {server.excerpt()}"
                    )
                time.sleep(0.1)
        finally:
            for _, gen in gens:
                gen.stop()
        server_cpu = process_cpu_s(server.pid) - cpu_before
        docs = [json.loads(path.read_text()) for path, _ in gens]
        statuses: dict[str, int] = {}
        for doc in docs:
            for code, n in doc["statuses"].items():
                statuses[code] = statuses.get(code, 0) + n
        failures = sum(n for code, n in statuses.items() if code != str(expect_status))
        conn_errors = sum(doc["error_count"] for doc in docs)
        if failures or conn_errors:
            first = next((e for doc in docs for e in doc["errors"]), "")
            raise BenchError(
                f"{url}: {failures} responses other than {expect_status} "
                f"(statuses {statuses}), {conn_errors} connection errors {first}; "
                f"server {server.excerpt(10)}"
            )
        latencies = sorted(x for doc in docs for x in doc["latencies_s"])
        elapsed = max(d["finished_at"] for d in docs) - min(d["started_at"] for d in docs)
        return LoadResult(
            requests=len(latencies),
            elapsed_s=elapsed,
            p50_ms=1000 * _quantile(latencies, 0.50),
            p99_ms=1000 * _quantile(latencies, 0.99),
            client_cpu_s=sum(d["cpu_s"] for d in docs),
            server_cpu_s=server_cpu,
        )


def run(services: BenchServices, params: IngressParams, say) -> list[Measurement]:
    """Start the bridge and the baseline app, then the single and batch benchmarks."""
    from connectors.ingress.auth import mint_token

    template = template_record()
    one = encode(record_for(template, PLACEHOLDER_REF, V1, 1))
    template_path = services.work_dir / "record-template.json"
    template_path.write_bytes(one)

    # The bridge gets its own database, as under `mmctl run`: it starts with the production
    # configuration whatever its routes use the database for.
    settings = services.settings(
        ingress_port=free_port(), database_url=services.new_database("bridge")
    )
    notes_batch = []
    batch_bytes = params.batch_size * (len(one) + 1) + 1
    if batch_bytes > settings.ingress.max_body_bytes:
        # A 500-record batch of fixture-shaped records does not fit the default limit.
        notes_batch.append(
            f"a {params.batch_size}-record body is {batch_bytes:,} bytes, over the configured "
            f"ingress.max_body_bytes={settings.ingress.max_body_bytes:,}: the bench raises the limit "
            f"to {2 * batch_bytes:,} for its bridge (with the default, 1С must send at most "
            f"{settings.ingress.max_body_bytes // (len(one) + 1)} such records per batch)"
        )
        settings = settings.model_copy(
            update={
                "ingress": settings.ingress.model_copy(update={"max_body_bytes": 2 * batch_bytes})
            }
        )
    notes_single = []
    # One load generator is one client (one token subject): the bridge's per-client rate
    # limit would measure itself. Lift it; the limiter still runs on every request.
    lifted = {
        name: value
        for name, value in (("client_rate_per_s", 1e9), ("client_burst", 10**9))
        if name in type(settings.ingress).model_fields
    }
    if lifted:
        notes_single.append(
            "the bridge's per-client rate limit is lifted for the bench (configured: "
            + ", ".join(f"ingress.{k}={getattr(settings.ingress, k):g}" for k in lifted)
            + "): the load generator is a single client; the limiter still runs on every request"
        )
        settings = settings.model_copy(
            update={"ingress": settings.ingress.model_copy(update=lifted)}
        )
    services.create_topics(settings)
    env = services.child_env(settings)
    token_path = services.work_dir / "token"
    token_path.touch(mode=0o600)
    token_path.write_text(mint_token(settings.auth, subject="bench", roles=["1c"], ttl_s=1800))

    bridge = services.children.add(mmctl("bridge", ["bridge"], env, services.log_dir).start())
    base_port = free_port()
    baseline = services.children.add(
        python_child(
            "baseline-app",
            "devstack.bench.baseline_app",
            ["--port", str(base_port)],
            env,
            services.log_dir,
        ).start()
    )
    bridge_url = f"http://127.0.0.1:{settings.ingress.port}"
    base_url = f"http://127.0.0.1:{base_port}"
    wait_http(f"{bridge_url}/health/ready", bridge)
    wait_http(f"{base_url}/health", baseline)
    load = Load(services, template_path, token_path, params)

    try:
        single = _single(
            load,
            params,
            bridge,
            f"{bridge_url}/v1/onec/products",
            baseline,
            f"{base_url}/produce",
            say,
        )
        batch = _batch(
            load,
            params,
            services,
            settings,
            template,
            bridge,
            f"{bridge_url}/v1/onec/products/batch",
            say,
        )
    finally:
        bridge.stop()
        baseline.stop()
    single[0].notes.extend(notes_single)
    batch[0].notes.extend(notes_batch + notes_single)
    return single + batch


def _single(
    load: Load,
    params: IngressParams,
    bridge: Child,
    bridge_url: str,
    baseline: Child,
    base_url: str,
    say,
) -> list[Measurement]:
    names = {"bridge": "bridge", "baseline": "bare FastAPI + AckedProducer"}
    rate = {k: Series(f"{v}") for k, v in names.items()}
    p50 = {k: Series(f"{v} p50") for k, v in names.items()}
    p99 = {k: Series(f"{v} p99") for k, v in names.items()}
    cpu = {k: Series(f"{v} CPU") for k, v in names.items()}
    client_share: list[float] = []
    targets = {"bridge": (bridge, bridge_url), "baseline": (baseline, base_url)}

    def one(kind: str, count: int) -> LoadResult:
        server, url = targets[kind]
        return load.run(
            server,
            url,
            count=count,
            concurrency=params.single_concurrency,
            clients=params.single_clients,
            batch_size=0,
            expect_status=202,
        )

    for kind in targets:  # warm-up: connections, code paths, producer metadata
        try:
            one(kind, params.warmup_requests)
        except BenchError as exc:
            for series in (rate, p50, p99, cpu):
                series[kind].error = str(exc)
            say(f"  single {names[kind]} warm-up FAILED: {str(exc).splitlines()[0]}")
    for rep in range(params.repetitions):
        for kind in targets:
            if rate[kind].error:
                continue
            try:
                r = one(kind, params.single_requests)
            except BenchError as exc:
                for series in (rate, p50, p99, cpu):
                    series[kind].error = str(exc)
                say(f"  single {names[kind]} FAILED: {str(exc).splitlines()[0]}")
                continue
            rate[kind].samples.append(r.rate)
            p50[kind].samples.append(r.p50_ms)
            p99[kind].samples.append(r.p99_ms)
            cpu[kind].samples.append(1e6 * r.server_cpu_s / r.requests)
            client_share.append(r.client_cpu_s / (r.client_cpu_s + r.server_cpu_s))
            say(
                f"  [{rep + 1}/{params.repetitions}] single {names[kind]:<28} {r.rate:8,.0f} req/s  "
                f"p50 {r.p50_ms:5.1f} ms  p99 {r.p99_ms:6.1f} ms  CPU µs/req: server "
                f"{1e6 * r.server_cpu_s / r.requests:4.0f}, client {1e6 * r.client_cpu_s / r.requests:3.0f}"
            )

    load_note = (
        f"{params.single_requests:,} requests per repetition (after {params.warmup_requests:,} "
        f"warm-up), {params.single_concurrency} keep-alive connections from "
        f"{params.single_clients} load-generator process(es), one ~2.8 KB record each; "
        "client and server share the machine's cores"
    )
    share = (
        f"the load generator used {100 * statistics.median(client_share):.0f} % of the CPU "
        "time spent by client + server"
        if client_share
        else ""
    )
    return [
        Measurement(
            "ingress.single.rate",
            "ingress single: throughput",
            "req/s",
            rate["bridge"],
            rate["baseline"],
            notes=[load_note, *([share] if share else [])],
        ),
        Measurement(
            "ingress.single.p50",
            "ingress single: p50 latency",
            "ms",
            p50["bridge"],
            p50["baseline"],
            higher_is_better=False,
        ),
        Measurement(
            "ingress.single.p99",
            "ingress single: p99 latency",
            "ms",
            p99["bridge"],
            p99["baseline"],
            higher_is_better=False,
        ),
        Measurement(
            "ingress.single.server_cpu",
            "ingress single: server CPU per request",
            "µs",
            cpu["bridge"],
            cpu["baseline"],
            higher_is_better=False,
            notes=[
                "user+system CPU of the server process (its librdkafka threads included) "
                "over the run, divided by the requests"
            ],
        ),
    ]


def _batch(
    load: Load,
    params: IngressParams,
    services: BenchServices,
    settings,
    template: dict,
    bridge: Child,
    url: str,
    say,
) -> list[Measurement]:
    requests = max(1, params.batch_records // params.batch_size)
    n = requests * params.batch_size
    bridge_rate = Series("bridge batch")
    producer_rate = Series("raw confluent producer")
    records = fresh_raw_records(n, template)
    topic = settings.topic(RAW)

    try:
        load.run(
            bridge,
            url,
            count=max(2, params.batch_concurrency),
            concurrency=params.batch_concurrency,
            clients=1,
            batch_size=params.batch_size,
            expect_status=200,
        )  # warm-up
    except BenchError as exc:
        bridge_rate.error = str(exc)
        say(f"  batch bridge warm-up FAILED: {str(exc).splitlines()[0]}")
    for rep in range(params.repetitions):
        if not bridge_rate.error:
            try:
                r = load.run(
                    bridge,
                    url,
                    count=requests,
                    concurrency=params.batch_concurrency,
                    clients=1,
                    batch_size=params.batch_size,
                    expect_status=200,
                )
                bridge_rate.samples.append(n / r.elapsed_s)
                say(
                    f"  [{rep + 1}/{params.repetitions}] batch bridge        {n / r.elapsed_s:9,.0f} rec/s"
                    f"  (p50 {r.p50_ms:.0f} ms per {params.batch_size}-record request)"
                )
            except BenchError as exc:
                bridge_rate.error = str(exc)
                say(f"  batch bridge FAILED: {str(exc).splitlines()[0]}")
        if not producer_rate.error:
            try:
                p = produce_all(settings, topic, records)
                producer_rate.samples.append(n / p.elapsed_s)
                say(
                    f"  [{rep + 1}/{params.repetitions}] batch raw producer  {n / p.elapsed_s:9,.0f} rec/s"
                )
            except BenchError as exc:
                producer_rate.error = str(exc)
                say(f"  batch raw producer FAILED: {str(exc).splitlines()[0]}")
    return [
        Measurement(
            "ingress.batch.rate",
            "ingress batch: throughput",
            "rec/s",
            bridge_rate,
            producer_rate,
            notes=[
                f"{n:,} records per repetition as {requests} POSTs of {params.batch_size} "
                f"(JSON array, {params.batch_concurrency} concurrent); baseline: the same number of "
                "records, same bytes and headers, produced in-process by one confluent-kafka Producer "
                "(acks=all, linger 5 ms, lz4) and flushed"
            ],
        )
    ]
