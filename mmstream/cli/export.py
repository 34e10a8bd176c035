"""``mmctl export ENTITY``: a snapshot of a normalized topic as a Parquet or CSV file.

The snapshot is what a compacted ``norm.<entity>`` topic means: per key the latest record,
with tombstones applied (a null value deletes the key). It reads every partition from its
beginning to the high watermark seen when the export starts (records produced later are
not part of the answer), decodes the values with the schema registry (Confluent wire
format) and writes them with DuckDB's ``COPY ... TO``, so column types survive: Avro
decimals stay decimals (Parquet DECIMAL(p,s)), timestamps stay timestamps (UTC).

"Latest" follows the topic catalog's rule: where the schema has ``revision``, the highest
revision per id wins (a record can arrive twice, at least once delivery); otherwise, and
among equal revisions, the later offset wins (all changes of a key are in one partition, in
order). The pure parts (type mapping, the snapshot rule, row encoding) are unit-tested; the
scan and the file writing are the I/O edges.

Exit codes: 1 for runtime errors (broker, registry, a record that cannot be decoded), 2 for
usage and settings errors. The cluster being read is printed to stderr before anything else.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import click

from mmstream.avro_columns import Dialect, column_type
from mmstream.avro_columns import columns as avro_columns

# -- Avro schema -> DuckDB column types (pure) ------------------------------------------

_PRIMITIVES = {
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "int": "INTEGER",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "bytes": "VARCHAR",
    "null": "VARCHAR",
}
_LOGICAL = {
    ("int", "date"): "DATE",
    ("int", "time-millis"): "TIME",
    ("long", "time-micros"): "TIME",
    # Instants: Parquet TIMESTAMP adjusted to UTC, whatever the reader's time zone.
    ("long", "timestamp-millis"): "TIMESTAMPTZ",
    ("long", "timestamp-micros"): "TIMESTAMPTZ",
    ("long", "local-timestamp-millis"): "TIMESTAMP",
    ("long", "local-timestamp-micros"): "TIMESTAMP",
    # A UUID stays text: Parquet's UUID type is not read by every tool (Spark, pandas).
    ("string", "uuid"): "VARCHAR",
}
_MAX_DECIMAL_PRECISION = 38  # DuckDB's (and Parquet readers') widest decimal


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_union(avro: list, walk) -> str:
    # [null, X] is X (every DuckDB column is nullable); any other union, whose branches
    # have no common column type, is its JSON text.
    branches = [b for b in avro if b != "null"]
    return walk(branches[0]) if len(branches) == 1 else "VARCHAR"


DUCKDB = Dialect(
    primitives=_PRIMITIVES,
    logical=_LOGICAL,
    union=_duckdb_union,
    # wider than any reader keeps exactly: text loses nothing
    decimal=lambda p, s: f"DECIMAL({p},{s})" if p <= _MAX_DECIMAL_PRECISION else "VARCHAR",
    record=lambda members: "STRUCT(" + ", ".join(f"{_ident(n)} {t}" for n, t in members) + ")",
    enum=lambda _: "VARCHAR",
    fixed=lambda _: "VARCHAR",  # base64 text, like plain bytes
    array=lambda items: f"{items}[]",
    map=lambda values: f"MAP(VARCHAR, {values})",
)


def duckdb_type(avro: Any, named: dict[str, str] | None = None) -> str:
    """The DuckDB column type that keeps an Avro type's meaning (mmstream/avro_columns.py):
    decimals as DECIMAL, instants as TIMESTAMPTZ, records as STRUCT, maps as MAP."""
    return column_type(avro, DUCKDB, named)


def columns(schema: dict) -> list[tuple[str, str]]:
    """(column, DuckDB type) of every top-level field of a record schema, in order."""
    return avro_columns(schema, DUCKDB)


def _is_nested(duck_type: str) -> bool:
    return duck_type.endswith("[]") or duck_type.startswith(("STRUCT(", "MAP("))


# -- the snapshot rule (pure) ------------------------------------------------------------


@dataclass
class Snapshot:
    """Latest record per key. With ``by_revision`` the highest ``revision`` wins and a
    record no newer than the tombstone that deleted its key stays deleted (a late duplicate
    must not bring a deleted object back); without it, offset order alone decides."""

    by_revision: bool
    rows: dict[str, dict] = field(default_factory=dict)
    # key -> (highest revision seen, whether a tombstone followed it)
    _seen: dict[str, tuple[int, bool]] = field(default_factory=dict)
    stale: int = 0  # older revisions that arrived after newer ones (ignored)
    tombstones: int = 0

    def apply(self, key: str, value: dict | None) -> None:
        """One record, in offset order of its partition."""
        if value is None:
            self.tombstones += 1
            self.rows.pop(key, None)
            if key in self._seen:
                self._seen[key] = (self._seen[key][0], True)
            else:
                self._seen[key] = (-1, True)
            return
        if self.by_revision:
            revision = int(value.get("revision") or 0)
            seen = self._seen.get(key)
            if seen is not None and (revision < seen[0] or (revision == seen[0] and seen[1])):
                self.stale += 1
                return
            self._seen[key] = (revision, False)
        self.rows[key] = value


# -- rows -> newline-delimited JSON for DuckDB (pure) ---------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)  # exact: DuckDB casts the text to DECIMAL(p,s)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot export a {type(value).__name__}")


def json_line(row: dict, names: list[str], text_columns: frozenset[str] = frozenset()) -> str:
    """One record as a JSON line with exactly ``names``; a structured value in one of
    ``text_columns`` (a union without a common column type) is given as its JSON text."""
    out = {}
    for name in names:
        value = row.get(name)
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif name in text_columns and isinstance(value, dict | list):
            value = json.dumps(value, default=_json_default, ensure_ascii=False)
        out[name] = value
    return json.dumps(out, default=_json_default, ensure_ascii=False)


# -- I/O: the scan, the registry, the file -------------------------------------------------


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_to_end(settings, topic: str, idle_timeout_s: float = 20.0) -> Iterator[Record]:
    """Every record of ``topic`` from the start of each partition to its high watermark as
    it was when the scan began (the same bounds as the DLQ reader, mmstream/dlq/reader.py).
    Raises BrokerUnavailable when a partition stops short of that end: a snapshot with a
    hole would be silently wrong."""
    from confluent_kafka import KafkaError, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    from mmstream.errors import BrokerUnavailable, TopicMissing
    from mmstream.kafka.admin import admin_client, existing_topics
    from mmstream.kafka.lag import end_offsets, list_offsets, probe_consumer
    from mmstream.kafka.message import position

    admin = admin_client(settings)
    have = existing_topics(admin)  # listing, not naming it: naming could auto-create it
    if topic not in have:
        raise TopicMissing(f"topic {topic} does not exist on {settings.kafka.bootstrap_servers}")
    tps = [(topic, p) for p in range(have[topic])]
    lows = list_offsets(admin, tps, OffsetSpec.earliest())
    highs = end_offsets(settings.kafka, tps)
    start = {p: max(0, lows[(t, p)]) for t, p in tps}
    end = {p: highs[(t, p)] for t, p in tps}
    pending = {p for p in start if end[p] > start[p]}
    if not pending:
        return
    consumer = probe_consumer(
        settings.kafka,
        **{
            "enable.partition.eof": True,
            "fetch.max.bytes": 16 << 20,
            "max.partition.fetch.bytes": 4 << 20,
            "fetch.wait.max.ms": 200,
        },
    )

    def finish(p: int) -> None:
        if p in pending:
            pending.discard(p)
            consumer.pause([TopicPartition(topic, p)])

    try:
        consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(pending)])
        idle_since = time.monotonic()
        while pending:
            messages = consumer.consume(1000, timeout=0.5)
            for msg in messages:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 — public code
                        # At the end (a compacted log's last offsets may be gaps). The end
                        # event carries its position; other error events may not.
                        finish(position(msg)[1])
                        continue
                    raise BrokerUnavailable(
                        f"reading {topic}[{msg.partition()}] failed: {error.str()}"
                    )
                _, p, offset = position(msg)
                if p not in pending or offset >= end[p]:
                    finish(p)
                    continue  # produced after the export began: not part of this snapshot
                yield Record(p, offset, msg.key(), msg.value())
                if offset + 1 >= end[p]:
                    finish(p)
            now = time.monotonic()
            if messages:
                idle_since = now
            elif now - idle_since > idle_timeout_s:
                raise BrokerUnavailable(
                    f"{topic}: partitions {sorted(pending)} gave no records for "
                    f"{idle_timeout_s:.0f}s before their end; the snapshot would be incomplete"
                )
    finally:
        consumer.close()


class Decoder:
    """Confluent-framed Avro values -> dicts in the reader schema: the latest one the
    registry holds for the subject (so records written with older versions get the new
    fields' defaults), or the committed ``avro/`` file when the subject has none yet."""

    def __init__(self, registry, subject: str, topic: str, fallback: Path) -> None:
        """``registry``: its URL or a SchemaRegistryClient configuration (auth, TLS) as
        ``Settings.registry_client_config()`` makes it."""
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        from mmstream.avro_serde import registry_client

        conf = {"url": registry} if isinstance(registry, str) else dict(registry)
        # Error texts of the HTTP library may quote the URL: never print its password.
        self._password = (
            urlsplit(str(conf["url"])).password
            or str(conf.get("basic.auth.user.info", "")).partition(":")[2]
            or None
        )
        self.client = registry_client(conf)
        self.schema = self._latest(subject) or json.loads(fallback.read_text(encoding="utf-8"))
        self._deserialize = AvroDeserializer(self.client, json.dumps(self.schema))
        self._ctx = SerializationContext(topic, MessageField.VALUE)

    def _latest(self, subject: str) -> dict | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        from mmstream.avro_serde import RegistryUnavailable

        try:
            text = self.client.get_latest_version(subject).schema.schema_str
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise RegistryUnavailable(
                self.scrub(f"schema registry answered {exc.http_status_code}: {exc.error_message}")
            ) from exc
        except Exception as exc:  # the client raises its HTTP library's errors as they are
            raise RegistryUnavailable(self.scrub(f"schema registry unreachable: {exc}")) from exc
        try:
            if text is None:
                raise ValueError("no schema text")
            return json.loads(text)
        except ValueError as exc:
            raise RegistryUnavailable(
                f"schema registry: the latest schema of {subject} is unusable: {exc}"
            ) from exc

    def scrub(self, text: str) -> str:
        """``text`` without the registry password."""
        return text.replace(self._password, "***") if self._password else text

    def __call__(self, payload: bytes) -> dict:
        return self._deserialize(payload, self._ctx)


class ExportFailed(Exception):
    """A runtime error of the export (exit 1)."""


def snapshot(settings, topic: str, decoder: Decoder, progress=None) -> Snapshot:
    """Scan ``topic`` and reduce it to the latest record per key."""
    snap = Snapshot(by_revision=any(f["name"] == "revision" for f in decoder.schema["fields"]))
    for n, rec in enumerate(read_to_end(settings, topic), 1):
        if rec.key is None:
            # Every normalized record is keyed by its id; one without a key has no row.
            raise ExportFailed(f"{topic}[{rec.partition}]@{rec.offset} has no key")
        try:
            value = None if rec.value is None else decoder(rec.value)
        except Exception as exc:  # the deserializer's errors are of several libraries
            raise ExportFailed(
                decoder.scrub(
                    f"{topic}[{rec.partition}]@{rec.offset} cannot be "
                    f"decoded: {type(exc).__name__}: {exc}"
                )
            ) from exc
        snap.apply(rec.key.decode("utf-8", "replace"), value)
        if progress:
            progress(n)
    return snap


def write(rows: list[dict], cols: list[tuple[str, str]], fmt: str, path: Path) -> None:
    """Write ``rows`` (ordered as given) with DuckDB; the file appears whole or not at all."""
    import duckdb

    names = [name for name, _ in cols]
    text_columns = frozenset(name for name, t in cols if t == "VARCHAR")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmctl-export-") as tmp:
        lines = Path(tmp) / "rows.ndjson"
        with lines.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json_line(row, names, text_columns))
                out.write("\n")
        select = ", ".join(
            f"to_json({_ident(n)}) AS {_ident(n)}" if fmt == "csv" and _is_nested(t) else _ident(n)
            for n, t in cols
        )
        options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER"
        partial = path.with_name(f".{path.name}.partial")
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")  # CSV timestamps written as UTC (+00)
            # Only quoted Avro field names are spliced in; paths and types are parameters.
            query = (
                f"COPY (SELECT {select} FROM read_json($rows, "  # noqa: S608
                "format = 'newline_delimited', columns = $columns, "
                f"maximum_object_size = 268435456)) TO $target ({options})"
            )
            con.execute(query, {"rows": str(lines), "columns": dict(cols), "target": str(partial)})
        finally:
            con.close()
        os.replace(partial, path)


# -- the command -------------------------------------------------------------------------


@click.command("export")
@click.argument("entity")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    required=True,
    help="Parquet keeps decimals and timestamps typed; CSV nests lines as JSON text.",
)
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default ./ENTITY.parquet or ./ENTITY.csv).",
)
def export(entity: str, fmt: str, output: Path | None) -> None:
    """Snapshot of the normalized topic norm.ENTITY: the latest revision per key, deleted
    (tombstoned) keys left out, read up to the end the topic had when the export started."""
    from mmstream import log
    from mmstream.cli.output import Counter
    from mmstream.errors import ConfigurationError, MMStreamError
    from mmstream.settings import get_settings, mask_url
    from mmstream.topics import load_catalog

    settings = get_settings()
    log.setup("mmctl-export", "WARNING", settings.log_format)
    catalog = load_catalog(settings.topics_file)
    # entity -> (topic name, Avro schema file): only normalized topics with a schema
    norm = {
        spec.entity: (spec.name, spec.schema)
        for spec in catalog.topics.values()
        if spec.role == "norm" and spec.schema
    }
    if entity not in norm:
        raise click.UsageError(
            f"no normalized topic for entity {entity!r}; one of: {', '.join(sorted(norm))}"
        )
    if not settings.schema_registry_url:
        raise ConfigurationError(
            "SCHEMA_REGISTRY_URL (MM_SCHEMA_REGISTRY_URL) is not set: the "
            "values are Avro in the registry's wire format"
        )
    name, schema_file = norm[entity]
    topic = settings.topic(name)
    target = output or Path(f"{entity}.{fmt}")
    click.echo(
        f"exporting {topic} from {settings.kafka.bootstrap_servers} "
        f"(schema registry {mask_url(settings.schema_registry_url)})",
        err=True,
    )
    counter = Counter(f"reading {topic}")
    try:
        decoder = Decoder(
            settings.registry_client_config(),
            f"{topic}-value",
            topic,
            settings.schemas_dir / schema_file,
        )
        snap = snapshot(settings, topic, decoder, progress=lambda n: counter.add(n - counter.count))
        counter.done()
        cols = columns(decoder.schema)
        write([snap.rows[k] for k in sorted(snap.rows)], cols, fmt, target)
    except ConfigurationError as exc:
        if exc.code != "topic_missing":
            raise  # settings: exit 2 from the group
        click.echo(f"mmctl: {exc}", err=True)
        sys.exit(1)
    except (MMStreamError, ExportFailed, OSError) as exc:
        click.echo(f"mmctl: export failed: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # DuckDB's errors (a full disk, a value it refuses)
        if type(exc).__module__.split(".")[0] != "duckdb":
            raise
        click.echo(f"mmctl: export failed writing {target}: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"wrote {len(snap.rows)} {entity} rows to {target} ({counter.count} records read, "
        f"{snap.tombstones} tombstones, {snap.stale} stale duplicates skipped)",
        err=True,
    )
