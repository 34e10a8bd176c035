"""Pipeline benchmark: how fast ONE sink worker (the entity sink, ``mmctl worker
sink-entities``: products are an entity like the others) drains a pre-filled raw product
topic into PostgreSQL (product rows + outbox entries, published), against two baselines
measured in the same run on the same records:

* noop agent  - a Faust agent that only acknowledges (same app factory, runner, batching):
                Faust's own per-event cost, the ceiling of any Faust worker here;
* merge ceiling - ``stages.sink.entity_store.merge`` called directly, in-process, in
                batches of 1000 inside transactions: the database side alone.

The raw topic is filled once; every repetition uses a fresh consumer group and a fresh
database, so each run does the full work (nothing is "already seen").
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import psycopg

from devstack.bench.processes import BenchError, check_alive, mmctl, python_child
from devstack.bench.processes import attempt as run_attempt
from devstack.bench.producing import produce_all
from devstack.bench.report import Measurement, Series
from devstack.bench.services import BenchServices
from devstack.bench.workload import (
    V2,
    ProductMix,
    RawRecord,
    mix_raw_records,
    product_mix,
    template_record,
)
from mmstream.envelope import REQUEST_ID, decode_headers
from mmstream.settings import Settings

RAW = "raw.onec.product"
# The headers the sink keeps with each outbox entry (stages/sink/entity_sink.py).
_KEEP_HEADERS = (REQUEST_ID, "ce_id", "ce_source")


@dataclass(frozen=True)
class PipelineParams:
    records: int
    repetitions: int
    timeout_s: float  # per run of the worker or the agent
    merge_batch: int = 1000  # the sink's default batch_max
    poll_interval_s: float = 0.25


@dataclass(frozen=True)
class Run:
    """One run of the worker or the agent, from recorded timestamps (not from polling).

    "Done" is the end of a batch. Including start-up: all records over process spawn ->
    last batch done. Excluding start-up: the records of batches 2..N over first batch done
    -> last batch done, so that neither the start-up nor the first fetch is in the window.
    """

    records: int
    spawned_at: float
    first_batch_records: int
    first_batch_done_at: float
    last_batch_done_at: float

    def __post_init__(self) -> None:
        if self.last_batch_done_at <= self.first_batch_done_at:
            raise BenchError("all records came in one batch: too few for a steady-state rate")

    @property
    def rate_incl_startup(self) -> float:
        return self.records / (self.last_batch_done_at - self.spawned_at)

    @property
    def rate_excl_startup(self) -> float:
        return (self.records - self.first_batch_records) / (
            self.last_batch_done_at - self.first_batch_done_at
        )

    @property
    def startup_s(self) -> float:
        return self.first_batch_done_at - self.spawned_at


def pg_dsn(url: str) -> str:
    """A SQLAlchemy psycopg URL as a plain libpq DSN."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def run_noop(
    services: BenchServices,
    settings: Settings,
    expected: int,
    params,
    label: str,
    topics: tuple[str, ...] = (RAW,),
) -> Run:
    """Start the no-op agent with a fresh group on ``topics``; wait for its result file;
    stop it."""
    s = services.settings(topic_prefix=settings.kafka.topic_prefix)
    result = services.work_dir / f"{label}-{uuid.uuid4().hex[:8]}.json"  # never a stale one
    args = ["--expected", str(expected), "--result", str(result)]
    for topic in topics:
        args += ["--topic", topic]
    child = services.children.add(
        python_child(
            label, "devstack.bench.noop_agent", args, services.child_env(s), services.log_dir
        ).start()
    )
    try:
        deadline = time.monotonic() + params.timeout_s
        while not result.exists():
            check_alive(child)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the no-op agent did not see {expected} records in "
                    f"{params.timeout_s:.0f}s; {child.excerpt()}"
                )
            time.sleep(0.1)
        doc = json.loads(result.read_text())
    finally:
        child.stop()
    return Run(
        expected,
        child.started_at,
        doc["first_batch_records"],
        doc["first_batch_done_at"],
        doc["last_batch_done_at"],
    )


def run_sink(
    services: BenchServices, settings: Settings, mix: ProductMix, params: PipelineParams, label: str
) -> Run:
    """Start one sink worker (fresh group, fresh database); wait until every product row
    and outbox entry is there and published; stop it; check the result is correct."""
    db = services.new_database("sink")
    s = services.settings(topic_prefix=settings.kafka.topic_prefix, database_url=db)
    child = services.children.add(
        mmctl(
            label,
            ["worker", "sink-entities", "--metrics-port", "0"],
            services.child_env(s),
            services.log_dir,
        ).start()
    )
    try:
        with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
            deadline = time.monotonic() + params.timeout_s
            while True:
                check_alive(child)
                products, outbox, pending = conn.execute(
                    "SELECT (SELECT count(*) FROM product), (SELECT count(*) FROM outbox), "
                    "(SELECT count(*) FROM outbox WHERE published_at IS NULL)"
                ).fetchone()
                if products == mix.products and outbox == mix.new_versions and pending == 0:
                    break
                if products > mix.products or outbox > mix.new_versions:
                    raise BenchError(
                        f"more rows than records: {products} products (expected "
                        f"{mix.products}), {outbox} outbox (expected {mix.new_versions})"
                    )
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the sink did not finish in {params.timeout_s:.0f}s: {products}/{mix.products} "
                        f"products, {outbox}/{mix.new_versions} outbox entries, {pending} unpublished; "
                        + child.excerpt()
                    )
                time.sleep(params.poll_interval_s)
            # Batch ends from the database's own timestamps, so they do not depend on the
            # polling: all outbox rows of a batch share created_at (the start of its merge
            # transaction), and a batch ends with the relay publishing its rows
            # (published_at: the start of the relay's last transaction for that batch).
            # The first batch is all new versions (the mix starts with each product's V1),
            # so its outbox rows count its raw records.
            first_records, first_done, last_done = conn.execute(
                "WITH b1 AS (SELECT * FROM outbox WHERE created_at = (SELECT min(created_at) FROM outbox)) "
                "SELECT (SELECT count(*) FROM b1), "
                "(SELECT extract(epoch FROM max(published_at))::float8 FROM b1), "
                "(SELECT extract(epoch FROM max(published_at))::float8 FROM outbox)"
            ).fetchone()
            current_v2 = conn.execute(
                "SELECT count(*) FROM product WHERE version = %s", (V2,)
            ).fetchone()[0]
    finally:
        child.stop()
    services.drop_database(db)
    if current_v2 != mix.two_versions:
        raise BenchError(
            f"wrong result: {current_v2} products at V2, expected {mix.two_versions} "
            "(a stale replay overwrote a newer version?)"
        )
    return Run(len(mix), child.started_at, first_records, first_done, last_done)


def _incoming(records: list[RawRecord], positions: list[tuple[int, int]], topic: str) -> list:
    """The records as the sink hands them to merge (parsed outside the timing)."""
    from stages.normalize.onec_product import parse
    from stages.sink.entity_store import Incoming

    out = []
    for rec, (partition, offset) in zip(records, positions, strict=True):
        headers = decode_headers(rec.headers)
        out.append(
            Incoming(
                parse(rec.value),
                topic,
                partition,
                offset,
                {k: headers[k] for k in _KEEP_HEADERS if k in headers},
            )
        )
    return out


def run_merge_ceiling(
    services: BenchServices,
    settings: Settings,
    incoming: list,
    mix: ProductMix,
    params: PipelineParams,
) -> float:
    """merge() directly, batches of ``merge_batch`` in one transaction each; raw records/s."""
    import uvloop

    from mmstream.db.engine import async_engine
    from mmstream.models.product import Product
    from stages.sink.entity_store import merge

    db = services.new_database("merge")
    s = services.settings(database_url=db)
    batches = [
        incoming[i : i + params.merge_batch] for i in range(0, len(incoming), params.merge_batch)
    ]

    async def go() -> tuple[float, int]:
        engine = async_engine(s)  # the worker's engine (pool, pre-ping)
        try:
            async with engine.connect():
                pass  # open the pooled connection before the clock starts, as a running worker has
            new_versions = 0
            started = time.perf_counter()
            for batch in batches:
                async with engine.begin() as conn:
                    new_versions += (await merge(conn, Product, batch)).changed
            return time.perf_counter() - started, new_versions
        finally:
            await engine.dispose()

    elapsed, new_versions = uvloop.run(go())  # the worker runs on uvloop too
    services.drop_database(db)
    if new_versions != mix.new_versions:
        raise BenchError(f"merge ceiling: {new_versions} new versions, expected {mix.new_versions}")
    return len(incoming) / elapsed


def run(services: BenchServices, params: PipelineParams, say) -> list[Measurement]:
    """Pre-fill, then N interleaved repetitions of: no-op agent, sink worker, merge ceiling."""
    settings = services.settings()
    services.create_topics(settings)
    topic = settings.topic(RAW)
    mix = product_mix(params.records)
    records = mix_raw_records(mix, template_record())
    produced = produce_all(settings, topic, records)
    say(
        f"  pre-filled {topic}: {len(records):,} records ({mix.products:,} products, "
        f"{mix.duplicates:,} duplicates, {mix.stale:,} stale replays) in {produced.elapsed_s:.1f}s"
    )
    incoming = _incoming(records, produced.positions, topic)
    n = len(records)

    noop_total, noop_steady, noop_start = (
        Series("noop agent (incl. start-up)"),
        Series("noop agent (excl. start-up)"),
        Series("noop agent start-up"),
    )
    sink_total, sink_steady, sink_start = (
        Series("sink worker (incl. start-up)"),
        Series("sink worker (excl. start-up)"),
        Series("sink worker start-up"),
    )
    ceiling = Series("merge ceiling")

    def attempt(series: list[Series], fn, what: str):
        return run_attempt(series, fn, what, say)

    for rep in range(params.repetitions):
        r = attempt(
            [noop_total, noop_steady, noop_start],
            lambda rep=rep: run_noop(services, settings, n, params, f"noop-{rep}"),
            "noop agent",
        )
        if r:
            noop_total.samples.append(r.rate_incl_startup)
            noop_steady.samples.append(r.rate_excl_startup)
            noop_start.samples.append(r.startup_s)
            say(
                f"  [{rep + 1}/{params.repetitions}] noop agent   {r.rate_incl_startup:8,.0f} rec/s incl. "
                f"start-up, {r.rate_excl_startup:8,.0f} excl. (start-up {r.startup_s:.1f}s)"
            )
        r = attempt(
            [sink_total, sink_steady, sink_start],
            lambda rep=rep: run_sink(services, settings, mix, params, f"sink-{rep}"),
            "sink worker",
        )
        if r:
            sink_total.samples.append(r.rate_incl_startup)
            sink_steady.samples.append(r.rate_excl_startup)
            sink_start.samples.append(r.startup_s)
            say(
                f"  [{rep + 1}/{params.repetitions}] sink worker  {r.rate_incl_startup:8,.0f} rec/s incl. "
                f"start-up, {r.rate_excl_startup:8,.0f} excl. (start-up {r.startup_s:.1f}s)"
            )
        rate = attempt(
            [ceiling],
            lambda: run_merge_ceiling(services, settings, incoming, mix, params),
            "merge ceiling",
        )
        if rate:
            ceiling.samples.append(rate)
            say(f"  [{rep + 1}/{params.repetitions}] merge ceiling {rate:8,.0f} rec/s")

    common = [
        f"{n:,} raw records ({mix.products:,} products, {mix.new_versions:,} new versions, "
        f"{mix.duplicates:,} duplicates, {mix.stale:,} stale replays); one worker, "
        f"{load_partitions(settings)} partitions; fresh group and database per repetition"
    ]
    return [
        Measurement(
            "pipeline.sink_incl_startup",
            "pipeline: 1 sink worker, incl. start-up",
            "rec/s",
            sink_total,
            noop_total,
            notes=[
                "all records over process spawn -> last batch done (for the sink: its outbox "
                "entries published); Faust start-up, imports and schema registration included",
                *common,
            ],
        ),
        Measurement(
            "pipeline.sink_excl_startup",
            "pipeline: 1 sink worker, excl. start-up",
            "rec/s",
            sink_steady,
            noop_steady,
            notes=[
                "records of batches 2..N over first batch done -> last batch done; sink batch "
                "ends from the database (outbox created_at groups a batch, published_at ends "
                "it), the agent's from its own clock"
            ],
        ),
        Measurement(
            "pipeline.sink_vs_merge",
            "pipeline: 1 sink worker vs merge ceiling",
            "rec/s",
            Series("sink worker (excl. start-up)", sink_steady.samples, sink_steady.error),
            ceiling,
            notes=[
                f"ceiling: merge() in-process on the same parsed records, {params.merge_batch} "
                "per transaction, fresh database, no Kafka, no outbox publishing"
            ],
        ),
        Measurement(
            "pipeline.startup",
            "pipeline: start-up (spawn -> first batch done)",
            "s",
            sink_start,
            noop_start,
            higher_is_better=False,
        ),
    ]


def load_partitions(settings: Settings) -> int:
    """Partitions of the raw topic, from the topic file."""
    from mmstream.topics import load_catalog

    return load_catalog(settings.topics_file)[RAW].partitions
