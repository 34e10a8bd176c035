"""Entity sink benchmark: how fast the entity sink (``mmctl worker sink-entities``, one and
two workers) drains a pre-filled mixed load of 1С products, warehouses, counterparties,
customer orders (each deriving a delivery task) and cash receipts (with duplicates and stale
replays) into the canonical tables + outbox, published to norm.<entity> and egress, against
the same run's:

* noop agent           - a Faust agent over the same raw topics that only acknowledges:
                         Faust's own per-event cost, the ceiling of any Faust worker here;
* merge in-process     - our crosswalk resolve + ``entity_store.merge`` on the same batches,
                         without Kafka or publishing: the database side of the worker (its
                         final state is what a correct worker run must end with);
* plain upsert ceiling - the same normalized rows written in-process with COPY into a temp
                         table + ``INSERT ... ON CONFLICT (id) DO UPDATE`` per entity table,
                         batches of 1000 in one transaction each; no version tracking, no
                         crosswalk, no outbox: the ceiling of any batched upsert here.

The raw topics are filled once; every repetition uses a fresh consumer group and database.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import psycopg
from confluent_kafka import Producer

from devstack.bench.entity_workload import (
    BUILDERS,
    EntityMix,
    Send,
    closing_sends,
    entity_mix,
    raw_record,
)
from devstack.bench.pipeline import Run as PipelineRun
from devstack.bench.pipeline import pg_dsn, run_noop
from devstack.bench.processes import BenchError, check_alive, mmctl
from devstack.bench.processes import attempt as run_attempt
from devstack.bench.producing import produce_all
from devstack.bench.report import Measurement, Series
from devstack.bench.services import BenchServices
from devstack.bench.workload import V2, RawRecord
from mmstream.envelope import REQUEST_ID, decode_headers
from mmstream.settings import Settings

# The headers the sink keeps with each outbox entry (stages/sink/entity_sink.py).
_KEEP_HEADERS = (REQUEST_ID, "ce_id", "ce_source")


def raw_topic(entity: str) -> str:
    return f"raw.onec.{entity}"


@dataclass(frozen=True)
class EntityParams:
    records: int
    repetitions: int
    timeout_s: float  # per run of the worker
    batch: int = 1000  # the sink's default batch_max; the in-process batches
    poll_interval_s: float = 0.25


@dataclass(frozen=True)
class Load:
    """The pre-filled topics: what was sent where, and what the sink must end up with."""

    sends: list[tuple[Send, str, int, int]]  # (send, physical topic, partition, offset), send order
    objects: dict[str, int]
    new_versions: dict[str, int]
    two_versions: dict[str, int]
    mix: EntityMix

    def __len__(self) -> int:
        return len(self.sends)

    @property
    def total_new(self) -> int:
        return sum(self.new_versions.values())

    def first_batch_records(self, last_new: dict[tuple[str, int], int]) -> tuple[int, int]:
        """Records of the first batch from the last new-version offset it stored per
        partition: (lower bound, upper bound). Duplicates and stale replays right after that
        offset may or may not have been in the batch; nothing in the database says which."""
        by_partition: dict[tuple[str, int], list[tuple[int, bool]]] = defaultdict(list)
        for send, topic, partition, offset in self.sends:
            by_partition[(topic, partition)].append((offset, send.new))
        low = high = 0
        for tp, last in last_new.items():
            rows = sorted(by_partition[tp])
            low += sum(1 for off, _ in rows if off <= last)
            upper = next((off - 1 for off, new in rows if off > last and new), rows[-1][0])
            high += sum(1 for off, _ in rows if off <= upper)
        return low, high


def _produce_to_partitions(
    settings: Settings, items: list[tuple[str, int, RawRecord]]
) -> list[int]:
    """Produce each record to its given partition (acks=all); the offsets, in input order."""
    producer = Producer(
        {
            **settings.kafka.client_config(),
            "client.id": "mm-bench-closers",
            "acks": "all",
            "enable.idempotence": False,
        }
    )
    offsets = [-1] * len(items)
    failures: list[str] = []

    def delivered(i: int):
        def callback(err, msg) -> None:
            if err is not None:
                failures.append(err.str())
            else:
                offsets[i] = msg.offset()

        return callback

    for i, (topic, partition, rec) in enumerate(items):
        producer.produce(
            topic,
            rec.value,
            rec.key,
            partition=partition,
            headers=rec.headers,
            on_delivery=delivered(i),
        )
    if producer.flush(60):
        raise BenchError("closing records still unacknowledged after 60s")
    if failures:
        raise BenchError(f"{len(failures)} closing records failed, first: {failures[0]}")
    return offsets


def prefill(settings: Settings, mix: EntityMix) -> tuple[Load, float]:
    """Fill raw.onec.<entity> (mix in send order, then one closing record per partition);
    the load and the seconds spent producing the mix."""
    from mmstream.topics import load_catalog

    catalog = load_catalog(settings.topics_file)
    partitions = {e: catalog[raw_topic(e)].partitions for e in BUILDERS}
    placed: list[tuple[Send, str, int, int] | None] = [None] * len(mix)
    elapsed = 0.0
    for entity in BUILDERS:
        index = [i for i, s in enumerate(mix.sends) if s.entity == entity]
        topic = settings.topic(raw_topic(entity))
        produced = produce_all(settings, topic, [raw_record(mix.sends[i]) for i in index])
        elapsed += produced.elapsed_s
        for i, (partition, offset) in zip(index, produced.positions, strict=True):
            placed[i] = (mix.sends[i], topic, partition, offset)
    closers = closing_sends(mix, partitions)
    offsets = _produce_to_partitions(
        settings, [(settings.topic(raw_topic(s.entity)), p, raw_record(s)) for s, p in closers]
    )
    sends = [p for p in placed if p is not None]
    sends += [
        (s, settings.topic(raw_topic(s.entity)), p, off)
        for (s, p), off in zip(closers, offsets, strict=True)
    ]
    extra = defaultdict(int)
    for s, _ in closers:
        extra[s.entity] += 1
    load = Load(
        sends,
        {e: n + extra[e] for e, n in mix.objects.items()},
        {e: n + extra[e] for e, n in mix.new_versions.items()},
        dict(mix.two_versions),
        mix,
    )
    return load, elapsed


def normalized(load: Load) -> list:
    """The canonical versions of every sent record, as the sink hands them to merge (send
    order; normalized outside any timing). A record that does not normalize is a bench bug."""
    from zoneinfo import ZoneInfo

    from stages.normalize.registry import Context, normalizers
    from stages.sink.entity_store import Incoming

    found = normalizers()
    ctx = Context(onec_tz=ZoneInfo("Europe/Moscow"))
    out = []
    for send, topic, partition, offset in load.sends:
        rec = raw_record(send)
        headers = decode_headers(rec.headers)
        kept = {k: headers[k] for k in _KEEP_HEADERS if k in headers}
        value = json.loads(rec.value)
        out += [
            Incoming(e, topic, partition, offset, kept)
            for e in found[raw_topic(send.entity)](value, headers, ctx)
        ]
        if not out or out[-1].source_offset != offset or out[-1].source_topic != topic:
            raise BenchError(f"a {send.entity} record normalized to nothing: a bench bug")
    # One raw record may give several entities (a customer order derives its delivery
    # task): the rates stay raw records per second; the expected rows come from the merge.
    return out


@dataclass(frozen=True)
class Run(PipelineRun):
    """One worker run, batch ends from the database (see run_sink); the first batch's record
    count is a bound, kept in ``first_batch_records_low`` for the report."""

    first_batch_records_low: int = 0


@dataclass(frozen=True)
class Expected:
    """What a correct run ends with, from the in-process merge of the same records (derived
    entities included): rows per entity table and outbox entries."""

    rows: dict[str, int]
    outbox: int


def tables(incoming: list) -> list[str]:
    """Every entity table the normalized load writes (derived entities included)."""
    return sorted({type(i.entity).ENTITY for i in incoming})


def _state(
    conn: psycopg.Connection, entities=tuple(BUILDERS)
) -> tuple[dict[str, int], dict[str, int], int, int]:
    rows, v2 = {}, {}
    for entity in entities:
        rows[entity], v2[entity] = conn.execute(
            f'SELECT count(*), count(*) FILTER (WHERE version = %s) FROM "{entity}"',  # noqa: S608
            (V2,),
        ).fetchone()
    outbox, pending = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
    ).fetchone()
    return rows, v2, outbox, pending


def run_sink(
    services: BenchServices,
    settings: Settings,
    load: Load,
    params: EntityParams,
    label: str,
    expected: Expected,
    workers: int = 1,
) -> Run:
    """Start ``workers`` entity sink workers in one fresh group (fresh database); wait until
    every row and outbox entry is there and published; stop them; check the result.

    Batch ends come from the database: a batch's outbox rows are marked published when it
    is done (published_at). The steady window starts when the first batch is done (with two
    workers: the first batch of either, so the other's start-up and the rebalance are inside
    the window, which can only lower the two-worker figure); the records done by then are
    counted per partition up to the next new version after the last one stored there (see
    Load.first_batch_records)."""
    db = services.new_database("entities")
    s = services.settings(topic_prefix=settings.kafka.topic_prefix, database_url=db)
    s = s.model_copy(
        update={
            "streams": s.streams.model_copy(
                update={"entity_sink_group": f"bench-entities-{uuid.uuid4().hex[:8]}"}
            )
        }
    )
    children = [
        services.children.add(
            mmctl(
                f"{label}-w{i}",
                ["worker", "sink-entities", "--metrics-port", "0"],
                services.child_env(s),
                services.log_dir,
            ).start()
        )
        for i in range(workers)
    ]
    names = list(expected.rows)
    try:
        with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
            deadline = time.monotonic() + params.timeout_s
            while True:
                for child in children:
                    check_alive(child)
                rows, v2, outbox, pending = _state(conn, names)
                if rows == expected.rows and outbox == expected.outbox and pending == 0:
                    break
                if outbox > expected.outbox or any(rows[e] > expected.rows[e] for e in rows):
                    raise BenchError(
                        f"more rows than objects: {rows} (expected {expected.rows}), "
                        f"{outbox} outbox (expected {expected.outbox})"
                    )
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the entity sink did not finish in {params.timeout_s:.0f}s: rows {rows} of "
                        f"{expected.rows}, {outbox}/{expected.outbox} outbox entries, {pending} "
                        "unpublished; " + children[0].excerpt()
                    )
                time.sleep(params.poll_interval_s)
            (window_start,) = conn.execute("SELECT min(published_at) FROM outbox").fetchone()
            first = conn.execute(
                "SELECT source_topic, source_partition, max(source_offset) FROM outbox "
                "WHERE published_at <= %s GROUP BY 1, 2",
                (window_start,),
            ).fetchall()
            first_done, last_done = conn.execute(
                "SELECT extract(epoch FROM %s::timestamptz)::float8, "
                "extract(epoch FROM max(published_at))::float8 FROM outbox",
                (window_start,),
            ).fetchone()
            final = _state(conn, names)
    finally:
        for child in children:
            child.stop()
    services.drop_database(db)
    _, v2, _, _ = final
    if {e: v2[e] for e in BUILDERS} != load.two_versions:
        raise BenchError(
            f"wrong result: rows at V2 {v2}, expected {load.two_versions} "
            "(a stale replay overwrote a newer version?)"
        )
    low, high = load.first_batch_records({(t, p): off for t, p, off in first})
    high = max(low, min(high, s.streams.batch_max * workers))  # a batch holds at most batch_max
    return Run(
        records=len(load),
        spawned_at=min(c.started_at for c in children),
        first_batch_records=high,
        first_batch_done_at=first_done,
        last_batch_done_at=last_done,
        first_batch_records_low=low,
    )


def _batches(incoming: list, size: int) -> list[list]:
    return [incoming[i : i + size] for i in range(0, len(incoming), size)]


def _upsert_statements(model) -> tuple[str, str, str, tuple[str, ...], frozenset[str]]:
    from stages.sink.entity_table import columns

    entity = model.ENTITY
    cols = columns(model)
    names = tuple(c.name for c in cols)
    quoted = ", ".join(f'"{n}"' for n in names)
    temp = f"plain_{entity}"
    create = (
        f"CREATE TEMP TABLE IF NOT EXISTS {temp} ("
        + ", ".join(f'"{c.name}" {c.pg_type}' for c in cols)
        + ", event_id uuid) ON COMMIT DELETE ROWS"
    )
    copy = f"COPY {temp} ({quoted}, event_id) FROM STDIN"
    sets = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n != "id")
    insert = (
        f'INSERT INTO "{entity}" ({quoted}, event_id) SELECT {quoted}, event_id FROM {temp} '  # noqa: S608
        f"ON CONFLICT (id) DO UPDATE SET {sets}, event_id = excluded.event_id, changed_at = now()"
    )
    return create, copy, insert, names, frozenset(c.name for c in cols if c.json)


def run_upsert_ceiling(
    services: BenchServices, load: Load, incoming: list, params: EntityParams
) -> float:
    """The plain batched upsert of the same rows; raw records/s."""
    import uvloop

    from mmstream.envelope import change_id
    from stages.sink.entity_store import rounds

    db = services.new_database("upsert")
    statements = {type(i.entity): _upsert_statements(type(i.entity)) for i in incoming}
    batches = _batches(incoming, params.batch)

    async def go() -> float:
        async with await psycopg.AsyncConnection.connect(pg_dsn(db)) as conn:
            async with conn.cursor() as cur:
                for create, *_ in statements.values():
                    await cur.execute(create)
            await conn.commit()
            started = time.perf_counter()
            for batch in batches:
                by_model: dict[type, list] = defaultdict(list)
                for inc in batch:
                    by_model[type(inc.entity)].append(inc)
                async with conn.transaction(), conn.cursor() as cur:
                    for model, items in by_model.items():
                        _, copy_sql, insert, names, json_cols = statements[model]
                        # ON CONFLICT may touch a row once per statement: an id sent twice
                        # within a batch goes in a second round, in batch order.
                        for whole in rounds(items):
                            await cur.execute(f"TRUNCATE plain_{model.ENTITY}")
                            async with cur.copy(copy_sql) as cp:
                                for _, inc in whole:
                                    ent = inc.entity
                                    dump = ent.model_dump(mode="python")
                                    await cp.write_row(
                                        tuple(
                                            json.dumps(dump[n], ensure_ascii=False, default=str)
                                            if n in json_cols
                                            else dump[n]
                                            for n in names
                                        )
                                        + (change_id(model.ENTITY, str(ent.id), ent.version),)
                                    )
                            await cur.execute(insert)
            return time.perf_counter() - started

    elapsed = uvloop.run(go())
    with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
        rows, *_ = _state(conn)
    services.drop_database(db)
    if rows != load.objects:
        raise BenchError(f"upsert ceiling: rows {rows}, expected {load.objects}")
    return len(load) / elapsed


def run_merge(
    services: BenchServices, load: Load, incoming: list, params: EntityParams
) -> tuple[float, Expected]:
    """Crosswalk resolve + merge() per entity, one transaction per batch, as the worker's
    EntitySink._store does; raw records/s."""
    import uvloop

    from mmstream.db.engine import async_engine
    from stages import crosswalk
    from stages.sink.entity_store import Incoming, merge

    db = services.new_database("entmerge")
    s = services.settings(database_url=db)
    batches = _batches(incoming, params.batch)

    async def go() -> tuple[float, int]:
        engine = async_engine(s)  # the worker's engine (pool, pre-ping)
        try:
            async with engine.connect():
                pass  # open the pooled connection before the clock starts, as a running worker has
            changed = 0
            started = time.perf_counter()
            for batch in batches:
                async with engine.begin() as conn:
                    resolved = await crosswalk.resolve(conn, [i.entity for i in batch])
                    by_model: dict[type, list] = defaultdict(list)
                    for inc, ent in zip(batch, resolved, strict=True):
                        by_model[type(ent)].append(
                            Incoming(
                                ent,
                                inc.source_topic,
                                inc.source_partition,
                                inc.source_offset,
                                inc.headers,
                            )
                        )
                    for model, items in by_model.items():
                        changed += (await merge(conn, model, items)).changed
            return time.perf_counter() - started, changed
        finally:
            await engine.dispose()

    elapsed, changed = uvloop.run(go())
    with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
        rows, v2, outbox, _ = _state(conn, tables(incoming))
    services.drop_database(db)
    mine = {e: rows[e] for e in BUILDERS}
    if (
        changed != outbox
        or changed < load.total_new
        or mine != load.objects
        or {e: v2[e] for e in BUILDERS} != load.two_versions
    ):
        raise BenchError(
            f"merge in-process: {changed} changes ({outbox} outbox entries, at least "
            f"{load.total_new}), rows {rows} (expected {load.objects}), at V2 {v2} "
            f"(expected {load.two_versions})"
        )
    return len(load) / elapsed, Expected(rows, outbox)


def run(services: BenchServices, params: EntityParams, say) -> list[Measurement]:
    """Pre-fill, then N interleaved repetitions of: merge in-process (which also gives the
    rows a correct run ends with), no-op agent, one entity sink worker, two workers, plain
    upsert ceiling."""
    settings = services.settings()
    services.create_topics(settings)
    mix = entity_mix(params.records)
    load, produced_s = prefill(settings, mix)
    say(
        f"  pre-filled raw.onec.{{{','.join(BUILDERS)}}}: {len(load):,} records "
        f"({sum(load.objects.values()):,} objects: {load.objects}; {mix.duplicates:,} duplicates, "
        f"{mix.stale:,} stale replays) in {produced_s:.1f}s"
    )
    incoming = normalized(load)
    n = len(load)
    raw = tuple(raw_topic(e) for e in BUILDERS)

    def sink_series(what: str) -> tuple[Series, Series, Series]:
        return (
            Series(f"{what} (incl. start-up)"),
            Series(f"{what} (excl. start-up)"),
            Series(f"{what} start-up"),
        )

    noop = sink_series("noop agent")
    one = sink_series("1 entity sink worker")
    two = sink_series("2 entity sink workers")
    ceiling = Series("plain upsert ceiling")
    merged = Series("merge in-process")
    uncertain: list[str] = []
    expected: Expected | None = None

    def attempt(series: list[Series], fn, what: str):
        return run_attempt(series, fn, what, say)

    def record(series: tuple[Series, Series, Series], r, tag: str, what: str) -> None:
        total, steady, start = series
        total.samples.append(r.rate_incl_startup)
        steady.samples.append(r.rate_excl_startup)
        start.samples.append(r.startup_s)
        low = getattr(r, "first_batch_records_low", r.first_batch_records)
        if low != r.first_batch_records:
            uncertain.append(f"{low}-{r.first_batch_records}")
        say(
            f"  {tag} {what:<16} {r.rate_incl_startup:8,.0f} rec/s incl. start-up, "
            f"{r.rate_excl_startup:8,.0f} excl. (start-up {r.startup_s:.1f}s, window after "
            f"{r.first_batch_records} records)"
        )

    for rep in range(params.repetitions):
        tag = f"[{rep + 1}/{params.repetitions}]"
        done = attempt(
            [merged], lambda: run_merge(services, load, incoming, params), "merge in-process"
        )
        if done:
            rate, expected = done
            merged.samples.append(rate)
            say(f"  {tag} merge in-proc    {rate:8,.0f} rec/s")
        r = attempt(
            list(noop),
            lambda rep=rep: run_noop(services, settings, n, params, f"entities-noop-{rep}", raw),
            "noop agent",
        )
        if r:
            record(noop, r, tag, "noop agent")
        if expected is None:
            continue
        for workers, series in ((1, one), (2, two)):
            r = attempt(
                list(series),
                lambda rep=rep, w=workers, e=expected: run_sink(
                    services, settings, load, params, f"entities-{w}w-{rep}", e, w
                ),
                f"{workers} entity sink worker(s)",
            )
            if r:
                record(series, r, tag, f"{workers} sink worker(s)")
        rate = attempt(
            [ceiling],
            lambda: run_upsert_ceiling(services, load, incoming, params),
            "plain upsert ceiling",
        )
        if rate:
            ceiling.samples.append(rate)
            say(f"  {tag} upsert ceiling   {rate:8,.0f} rec/s")

    derived = len(incoming) - n
    common = [
        f"{n:,} raw records over {len(BUILDERS)} entities ({load.objects}; "
        f"{load.total_new:,} new versions, {mix.duplicates:,} duplicates, {mix.stale:,} stale "
        f"replays, one closing record per partition; {derived:,} derived entities: each "
        "customer order derives its delivery task); rates are raw records/s; fresh group "
        "and database per run"
    ]
    window = (
        "excl. start-up: the raw records of batches 2..N over first batch done -> last "
        "batch done (first-batch records counted per partition up to the next new version "
        "after the last one stored there: the conservative side); batch ends from the "
        "database (outbox published_at); with two workers the window starts at the first "
        "batch of either, so the other's start-up and the rebalance count against them"
    )
    if uncertain:
        window += f"; the bound mattered this run: {', '.join(uncertain)} records"
    ceiling_note = (
        f"ceiling: the same normalized rows, COPY + INSERT ... ON CONFLICT (id) DO UPDATE "
        f"per entity table, {params.batch} raw records per transaction, fresh database, "
        "no version tracking, no crosswalk, no outbox, no Kafka"
    )

    def copy(series: Series) -> Series:
        return Series(series.name, series.samples, series.error)

    return [
        Measurement(
            "entities.sink_vs_noop",
            "entities: 1 entity sink worker vs noop agent (excl. start-up)",
            "rec/s",
            one[1],
            noop[1],
            notes=[
                window,
                "noop agent: the same Faust app factory, topics and batching, acknowledging only",
                *common,
            ],
        ),
        Measurement(
            "entities.sink_vs_merge",
            "entities: 1 entity sink worker (excl. start-up) vs merge in-process",
            "rec/s",
            copy(one[1]),
            merged,
            notes=[
                "merge: crosswalk resolve + entity_store.merge per entity, one transaction "
                f"per {params.batch} raw records, as the worker does, without Kafka and "
                "without publishing"
            ],
        ),
        Measurement(
            "entities.two_workers_vs_one",
            "entities: 2 entity sink workers vs 1 (excl. start-up)",
            "rec/s",
            two[1],
            copy(one[1]),
            notes=[
                "two worker processes in one consumer group, spawned together; the "
                "window starts at the first batch of either (conservative for two)"
            ],
        ),
        Measurement(
            "entities.sink_incl_startup_vs_noop",
            "entities: 1 entity sink worker vs noop agent (incl. start-up)",
            "rec/s",
            one[0],
            noop[0],
            notes=[
                "all records over process spawn -> last batch done (outbox published); "
                "Faust start-up, imports and schema registration included"
            ],
        ),
        Measurement(
            "entities.sink_excl_startup_vs_upsert",
            "entities: 1 entity sink (excl. start-up) vs plain upsert",
            "rec/s",
            copy(one[1]),
            ceiling,
            notes=[ceiling_note],
        ),
        Measurement(
            "entities.merge_vs_upsert",
            "entities: merge in-process vs plain upsert",
            "rec/s",
            copy(merged),
            copy(ceiling),
        ),
        Measurement(
            "entities.startup",
            "entities: start-up (spawn -> first batch done)",
            "s",
            one[2],
            noop[2],
            higher_is_better=False,
        ),
    ]
