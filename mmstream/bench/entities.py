"""Entity sink benchmark: how fast ONE entity sink worker (``mmctl worker sink-entities``)
drains a pre-filled mixed load of 1С warehouses, counterparties, customer orders and cash
receipts (with duplicates and stale replays) into the canonical tables + outbox, published
to norm.<entity>, against the same run's:

* plain upsert ceiling - the same normalized rows written in-process with COPY into a temp
                         table + ``INSERT ... ON CONFLICT (id) DO UPDATE`` per entity table,
                         batches of 1000 in one transaction each; no version tracking, no
                         crosswalk, no outbox: the ceiling of any batched upsert here;
* merge in-process     - our crosswalk resolve + ``entity_store.merge`` on the same batches,
                         without Kafka or publishing: the database side of the worker.

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

from mmstream.bench.entity_workload import (
    BUILDERS,
    EntityMix,
    Send,
    closing_sends,
    entity_mix,
    raw_record,
)
from mmstream.bench.pipeline import Run as PipelineRun
from mmstream.bench.pipeline import pg_dsn
from mmstream.bench.processes import BenchError, mmctl
from mmstream.bench.processes import attempt as run_attempt
from mmstream.bench.producing import produce_all
from mmstream.bench.report import Measurement, Series
from mmstream.bench.services import BenchServices
from mmstream.bench.workload import V2, RawRecord
from mmstream.envelope import REQUEST_ID, decode_headers
from mmstream.settings import Settings

# The headers the sink keeps with each outbox entry (streams/sink/entity_sink.py).
_KEEP_HEADERS = (REQUEST_ID, "ce_id", "ce_source")


def raw_topic(entity: str) -> str:
    return f"raw.onec.{entity}"


@dataclass(frozen=True)
class EntityParams:
    records: int
    repetitions: int
    timeout_s: float            # per run of the worker
    batch: int = 1000           # the sink's default batch_max; the in-process batches
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


def _produce_to_partitions(settings: Settings, items: list[tuple[str, int, RawRecord]]) -> list[int]:
    """Produce each record to its given partition (acks=all); the offsets, in input order."""
    producer = Producer({**settings.kafka.client_config(), "client.id": "mm-bench-closers",
                         "acks": "all", "enable.idempotence": False})
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
        producer.produce(topic, rec.value, rec.key, partition=partition, headers=rec.headers,
                         on_delivery=delivered(i))
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
    offsets = _produce_to_partitions(settings, [(settings.topic(raw_topic(s.entity)), p, raw_record(s))
                                                for s, p in closers])
    sends = [p for p in placed if p is not None]
    sends += [(s, settings.topic(raw_topic(s.entity)), p, off)
              for (s, p), off in zip(closers, offsets, strict=True)]
    extra = defaultdict(int)
    for s, _ in closers:
        extra[s.entity] += 1
    load = Load(sends, {e: n + extra[e] for e, n in mix.objects.items()},
                {e: n + extra[e] for e, n in mix.new_versions.items()}, dict(mix.two_versions), mix)
    return load, elapsed


def normalized(load: Load) -> list:
    """The canonical versions of every sent record, as the sink hands them to merge (send
    order; normalized outside any timing). A record that does not normalize is a bench bug."""
    from zoneinfo import ZoneInfo

    from streams.normalize.registry import Context, normalizers
    from streams.sink.entity_store import Incoming

    found = normalizers()
    ctx = Context(onec_tz=ZoneInfo("Europe/Moscow"))
    out = []
    for send, topic, partition, offset in load.sends:
        rec = raw_record(send)
        headers = decode_headers(rec.headers)
        kept = {k: headers[k] for k in _KEEP_HEADERS if k in headers}
        value = json.loads(rec.value)
        out += [Incoming(e, topic, partition, offset, kept)
                for e in found[raw_topic(send.entity)](value, headers, ctx)]
    if len(out) != len(load):
        raise BenchError(f"{len(load)} records normalized to {len(out)} entities, expected one each")
    return out


@dataclass(frozen=True)
class Run(PipelineRun):
    """One worker run, batch ends from the database (see run_sink); the first batch's record
    count is a bound, kept in ``first_batch_records_low`` for the report."""

    first_batch_records_low: int = 0


def _state(conn: psycopg.Connection) -> tuple[dict[str, int], dict[str, int], int, int]:
    rows, v2 = {}, {}
    for entity in BUILDERS:
        rows[entity], v2[entity] = conn.execute(
            f'SELECT count(*), count(*) FILTER (WHERE version = %s) FROM "{entity}"',  # noqa: S608
            (V2,)).fetchone()
    outbox, pending = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox").fetchone()
    return rows, v2, outbox, pending


def run_sink(services: BenchServices, settings: Settings, load: Load, params: EntityParams,
             label: str) -> Run:
    """Start one entity sink worker (fresh group, fresh database); wait until every row and
    outbox entry is there and published; stop it; check the result is correct."""
    db = services.new_database("entities")
    s = services.settings(topic_prefix=settings.kafka.topic_prefix, database_url=db)
    s = s.model_copy(update={"streams": s.streams.model_copy(
        update={"entity_sink_group": f"bench-entities-{uuid.uuid4().hex[:8]}"})})
    child = services.children.add(mmctl(label, ["worker", "sink-entities", "--metrics-port", "0"],
                                        services.child_env(s), services.log_dir).start())
    try:
        with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
            deadline = time.monotonic() + params.timeout_s
            while True:
                child.check_alive()
                rows, v2, outbox, pending = _state(conn)
                if rows == load.objects and outbox == load.total_new and pending == 0:
                    break
                if outbox > load.total_new or any(rows[e] > load.objects[e] for e in rows):
                    raise BenchError(f"more rows than objects: {rows} (expected {load.objects}), "
                                     f"{outbox} outbox (expected {load.total_new})")
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the entity sink did not finish in {params.timeout_s:.0f}s: rows {rows} of "
                        f"{load.objects}, {outbox}/{load.total_new} outbox entries, {pending} "
                        "unpublished; " + child.excerpt())
                time.sleep(params.poll_interval_s)
            # Batch ends from the database's own timestamps, as in the product section: the
            # outbox rows of one batch share created_at (its merge transaction's start; the
            # sink merges every entity of a batch in one transaction) and a batch ends when
            # the relay has published them (published_at). Each partition ends with a new
            # version (the closing records), so the last batch is visible too.
            first = conn.execute(
                "SELECT source_topic, source_partition, max(source_offset), "
                "extract(epoch FROM max(published_at))::float8 FROM outbox "
                "WHERE created_at = (SELECT min(created_at) FROM outbox) GROUP BY 1, 2").fetchall()
            last_done = conn.execute(
                "SELECT extract(epoch FROM max(published_at))::float8 FROM outbox").fetchone()[0]
            final = _state(conn)
    finally:
        child.stop()
    services.drop_database(db)
    _, v2, _, _ = final
    if v2 != load.two_versions:
        raise BenchError(f"wrong result: rows at V2 {v2}, expected {load.two_versions} "
                         "(a stale replay overwrote a newer version?)")
    low, high = load.first_batch_records({(t, p): off for t, p, off, _ in first})
    high = max(low, min(high, s.streams.batch_max))  # a batch never holds more than batch_max
    return Run(records=len(load), spawned_at=child.started_at, first_batch_records=high,
               first_batch_done_at=max(done for *_, done in first), last_batch_done_at=last_done,
               first_batch_records_low=low)


def _batches(incoming: list, size: int) -> list[list]:
    return [incoming[i:i + size] for i in range(0, len(incoming), size)]


def _upsert_statements(model) -> tuple[str, str, str, tuple[str, ...], frozenset[str]]:
    from streams.sink.entity_table import columns

    entity = model.ENTITY
    cols = columns(model)
    names = tuple(c.name for c in cols)
    quoted = ", ".join(f'"{n}"' for n in names)
    temp = f"plain_{entity}"
    create = (f"CREATE TEMP TABLE IF NOT EXISTS {temp} ("
              + ", ".join(f'"{c.name}" {c.pg_type}' for c in cols)
              + ", event_id uuid) ON COMMIT DELETE ROWS")
    copy = f"COPY {temp} ({quoted}, event_id) FROM STDIN"
    sets = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n != "id")
    insert = (f'INSERT INTO "{entity}" ({quoted}, event_id) SELECT {quoted}, event_id FROM {temp} '  # noqa: S608
              f"ON CONFLICT (id) DO UPDATE SET {sets}, event_id = excluded.event_id, changed_at = now()")
    return create, copy, insert, names, frozenset(c.name for c in cols if c.json)


def run_upsert_ceiling(services: BenchServices, load: Load, incoming: list,
                       params: EntityParams) -> float:
    """The plain batched upsert of the same rows; raw records/s."""
    import uvloop

    from mmstream.envelope import change_id
    from streams.sink.entity_store import rounds

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
                                        tuple(json.dumps(dump[n], ensure_ascii=False, default=str)
                                              if n in json_cols else dump[n] for n in names)
                                        + (change_id(model.ENTITY, str(ent.id), ent.version),))
                            await cur.execute(insert)
            return time.perf_counter() - started

    elapsed = uvloop.run(go())
    with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
        rows, *_ = _state(conn)
    services.drop_database(db)
    if rows != load.objects:
        raise BenchError(f"upsert ceiling: rows {rows}, expected {load.objects}")
    return len(incoming) / elapsed


def run_merge(services: BenchServices, load: Load, incoming: list, params: EntityParams) -> float:
    """Crosswalk resolve + merge() per entity, one transaction per batch, as the worker's
    EntitySink._store does; raw records/s."""
    import uvloop

    from mmstream.db.engine import async_engine
    from streams import crosswalk
    from streams.sink.entity_store import Incoming, merge

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
                        by_model[type(ent)].append(Incoming(ent, inc.source_topic, inc.source_partition,
                                                            inc.source_offset, inc.headers))
                    for model, items in by_model.items():
                        changed += (await merge(conn, model, items)).changed
            return time.perf_counter() - started, changed
        finally:
            await engine.dispose()

    elapsed, changed = uvloop.run(go())
    with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
        rows, v2, outbox, _ = _state(conn)
    services.drop_database(db)
    if changed != load.total_new or rows != load.objects or v2 != load.two_versions:
        raise BenchError(f"merge in-process: {changed} changes (expected {load.total_new}), rows "
                         f"{rows} (expected {load.objects}), at V2 {v2} (expected {load.two_versions})")
    return len(incoming) / elapsed


def run(services: BenchServices, params: EntityParams, say) -> list[Measurement]:
    """Pre-fill, then N interleaved repetitions of: entity sink worker, plain upsert ceiling,
    merge in-process."""
    settings = services.settings()
    services.create_topics(settings)
    mix = entity_mix(params.records)
    load, produced_s = prefill(settings, mix)
    say(f"  pre-filled raw.onec.{{{','.join(BUILDERS)}}}: {len(load):,} records "
        f"({sum(load.objects.values()):,} objects: {load.objects}; {mix.duplicates:,} duplicates, "
        f"{mix.stale:,} stale replays) in {produced_s:.1f}s")
    incoming = normalized(load)
    n = len(load)

    sink_total, sink_steady, sink_start = (Series("entity sink (incl. start-up)"),
                                          Series("entity sink (excl. start-up)"),
                                          Series("entity sink start-up"))
    ceiling = Series("plain upsert ceiling")
    merged = Series("merge in-process")
    uncertain: list[str] = []

    def attempt(series: list[Series], fn, what: str):
        return run_attempt(series, fn, what, say)

    for rep in range(params.repetitions):
        tag = f"[{rep + 1}/{params.repetitions}]"
        r = attempt([sink_total, sink_steady, sink_start],
                    lambda rep=rep: run_sink(services, settings, load, params, f"entities-{rep}"),
                    "entity sink")
        if r:
            sink_total.samples.append(r.rate_incl_startup)
            sink_steady.samples.append(r.rate_excl_startup)
            sink_start.samples.append(r.startup_s)
            if r.first_batch_records != r.first_batch_records_low:
                uncertain.append(f"{r.first_batch_records_low}-{r.first_batch_records}")
            say(f"  {tag} entity sink   {r.rate_incl_startup:8,.0f} rec/s incl. start-up, "
                f"{r.rate_excl_startup:8,.0f} excl. (start-up {r.startup_s:.1f}s, first batch "
                f"{r.first_batch_records} records)")
        rate = attempt([ceiling], lambda: run_upsert_ceiling(services, load, incoming, params),
                       "plain upsert ceiling")
        if rate:
            ceiling.samples.append(rate)
            say(f"  {tag} upsert ceiling {rate:8,.0f} rec/s")
        rate = attempt([merged], lambda: run_merge(services, load, incoming, params), "merge in-process")
        if rate:
            merged.samples.append(rate)
            say(f"  {tag} merge in-proc  {rate:8,.0f} rec/s")

    common = [f"{n:,} raw records over 4 entities ({load.objects}; {load.total_new:,} new versions, "
              f"{mix.duplicates:,} duplicates, {mix.stale:,} stale replays, one closing record per "
              f"partition); one worker; fresh group and database per repetition"]
    first_note = ("first-batch records counted up to the next new version after the batch's last "
                  "stored one in each partition (duplicates/stale right after it are charged to "
                  "the first batch: the conservative side)")
    if uncertain:
        first_note += f"; the bound mattered this run: first batch {', '.join(uncertain)} records"
    ceiling_note = (f"ceiling: the same normalized rows, COPY + INSERT ... ON CONFLICT (id) DO UPDATE "
                    f"per entity table, {params.batch} raw records per transaction, fresh database, "
                    "no version tracking, no crosswalk, no outbox, no Kafka")
    return [
        Measurement("entities.sink_excl_startup_vs_upsert",
                    "entities: 1 entity sink (excl. start-up) vs plain upsert", "rec/s",
                    sink_steady, ceiling, notes=[
                        "records of batches 2..N over first batch done -> last batch done; batch "
                        "ends from the database (outbox created_at groups a batch, published_at "
                        "ends it)", first_note, ceiling_note, *common]),
        Measurement("entities.sink_incl_startup_vs_upsert",
                    "entities: 1 entity sink (incl. start-up) vs plain upsert", "rec/s",
                    Series(sink_total.name, sink_total.samples, sink_total.error),
                    Series(ceiling.name, ceiling.samples, ceiling.error), notes=[
                        "all records over process spawn -> last batch done (outbox published); "
                        "Faust start-up, imports and schema registration included"]),
        Measurement("entities.merge_vs_upsert", "entities: merge in-process vs plain upsert",
                    "rec/s", merged, Series(ceiling.name, ceiling.samples, ceiling.error), notes=[
                        "merge: crosswalk resolve + entity_store.merge per entity, one transaction "
                        f"per {params.batch} raw records, as the worker does, without Kafka and "
                        "without publishing the outbox"]),
        Measurement("entities.startup", "entities: start-up (spawn -> first batch done)", "s",
                    sink_start, None, higher_is_better=False),
    ]
