"""Version-aware, ownership-aware, batched upsert of any canonical entity with its outbox
entries, in the caller's transaction.

One round = COPY into a temp table + one statement of data-modifying CTEs:
  1. remember every (id, version) in ``source_version``; versions seen before are skipped
     (equal to the stored one: duplicate; otherwise: stale — 1С DataVersion is opaque, so
     "seen before" is the only order it gives);
  2. skip fresh versions older than the newest stamp seen from the same source
     (Bitrix24 ``DATE_MODIFY``): stale;
  3. upsert: a field takes the incoming value only when the version's source owns it
     (design.md: 1С master data and documents, middleware statuses, Bitrix24 courier
     facts); the row changes only when a field really changes, so an echo of what we wrote
     into a target, or a non-owner's edit, produces nothing downstream;
  4. one outbox entry per real change, carrying the whole merged row (state, not delta).
A round holds each id at most once; a batch with several versions of one id runs several
rounds in order, so every change is published (invariant 5) in order (invariant 6).
"""

from __future__ import annotations

import json
import re
import typing
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mmstream.envelope import change_id
from mmstream.models.base import Canonical, Source
from stages.outbox.relay import OutboxRow
from stages.sink.entity_table import Column, columns

SOURCES: tuple[str, ...] = typing.get_args(Source)
_TRACE = ("seq", "source_topic", "source_partition", "source_offset", "headers", "event_id")


@dataclass(frozen=True)
class Incoming:
    """A canonical entity version and where its raw record came from."""

    entity: Canonical
    source_topic: str
    source_partition: int
    source_offset: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class MergeCounts:
    """What a merge did, by reason; ``changed`` = outbox entries written."""

    total: int = 0
    changed: int = 0
    inserted: int = 0
    duplicate: int = 0
    stale: int = 0
    not_owner: int = 0
    unchanged: int = 0

    def add(self, other: MergeCounts) -> None:
        """Accumulate ``other`` into this one."""
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def skips(self) -> dict[str, int]:
        """Skipped versions by reason (the metric's ``reason`` label)."""
        return {
            "duplicate": self.duplicate,
            "stale": self.stale,
            "not_owner": self.not_owner,
            "unchanged": self.unchanged,
        }


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Statements:
    temp: str
    create_temp: str
    copy: str
    merge: str
    json_columns: frozenset[str]
    names: tuple[str, ...]


@cache
def _statements(model: type[Canonical], identity_only: bool = False) -> _Statements:
    entity = model.ENTITY
    # Identifiers come from the model classes, never from records; still, refuse anything
    # that is not a plain name before it reaches SQL text.
    if not re.fullmatch(r"[a-z][a-z0-9_]*", entity):
        raise ValueError(f"entity name {entity!r} is not a plain identifier")
    cols: tuple[Column, ...] = columns(model)
    names = tuple(c.name for c in cols)
    temp = f"incoming_{entity}"
    create = (
        f"CREATE TEMP TABLE IF NOT EXISTS {temp} (seq integer, source_topic text, "
        "source_partition integer, source_offset bigint, headers jsonb, event_id uuid, "
        + ", ".join(f"{_q(c.name)} {c.pg_type}" for c in cols)
        + ") ON COMMIT DELETE ROWS"
    )
    copy = f"COPY {temp} ({', '.join([*_TRACE, *(_q(n) for n in names)])}) FROM STDIN"
    tracked = [*model.content_fields(), "deleted"]

    def merged(name: str) -> str:
        if identity_only and name != "deleted":
            # A deletion that only names the object (it vanished at the source) flags the
            # row and keeps what we knew; it never blanks the fields.
            return f"t.{_q(name)}"
        allowed = [s for s in SOURCES if model.owns(s, name)]
        if len(allowed) == len(SOURCES):
            return f"excluded.{_q(name)}"
        if not allowed:
            return f"t.{_q(name)}"
        owners = ", ".join(repr(s) for s in allowed)
        return (
            f"CASE WHEN excluded.source IN ({owners}) OR NOT (t.writers && ARRAY[{owners}]) "
            f"THEN excluded.{_q(name)} ELSE t.{_q(name)} END"
        )

    sets = [f"{_q(n)} = {merged(n)}" for n in tracked]
    sets += [
        "source = excluded.source",
        "version = excluded.version",
        "source_stamp = excluded.source_stamp",
        "external_ids = t.external_ids || excluded.external_ids",
        "revision = t.revision + 1",
        "event_id = excluded.event_id",
        "changed_at = now()",
        "writers = ARRAY(SELECT DISTINCT w FROM unnest(t.writers || excluded.writers) w ORDER BY w)",
    ]
    differs = (
        f"({', '.join(merged(n) for n in tracked)}) IS DISTINCT FROM "
        f"({', '.join('t.' + _q(n) for n in tracked)})"
    )
    incoming_differs = (
        f"({', '.join('c.' + _q(n) for n in tracked)}) IS DISTINCT FROM "
        f"({', '.join('t.' + _q(n) for n in tracked)})"
    )
    table = _q(entity)
    col_list = ", ".join(_q(n) for n in names)
    # Identifiers only come from the model (checked above); values go through COPY.
    merge = f"""
WITH fresh AS (
    INSERT INTO source_version (entity, source_id, version)
    SELECT '{entity}', id::text, version FROM {temp}
    ON CONFLICT DO NOTHING
    RETURNING source_id, version
), cand AS (
    SELECT i.* FROM {temp} i
    JOIN fresh f ON f.source_id = i.id::text AND f.version = i.version
    WHERE i.source_stamp IS NULL OR NOT EXISTS (
        SELECT 1 FROM source_stamp s
        WHERE s.entity = '{entity}' AND s.id = i.id AND s.source = i.source
          AND s.stamp > i.source_stamp)
), stamped AS (
    INSERT INTO source_stamp (entity, id, source, stamp)
    SELECT '{entity}', id, source, source_stamp FROM cand WHERE source_stamp IS NOT NULL
    ON CONFLICT (entity, id, source) DO UPDATE SET stamp = GREATEST(source_stamp.stamp, excluded.stamp)
    RETURNING 1
), upserted AS (
    INSERT INTO {table} AS t ({col_list}, revision, writers, event_id)
    SELECT {col_list}, 1, ARRAY[source], event_id FROM cand
    ON CONFLICT (id) DO UPDATE SET {", ".join(sets)}
    WHERE {differs}
    RETURNING t.*, (t.xmax = 0) AS inserted
), outboxed AS (
    INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic,
                        source_partition, source_offset, payload, headers)
    SELECT u.event_id, '{entity}', u.id::text,
           CASE WHEN u.deleted THEN 'delete' ELSE 'upsert' END, u.version, c.source_topic,
           c.source_partition, c.source_offset,
           to_jsonb(u) - 'inserted' - 'stored_at' - 'changed_at' - 'event_id' - 'writers', c.headers
    -- The temp table, not cand: a CTE has no row estimate and the planner joins two of
    -- them in a nested loop (quadratic in the round's size); an id is there at most once.
    FROM upserted u JOIN {temp} c ON c.id = u.id
    ORDER BY c.seq
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id, event_id, entity, entity_id, change, version, payload::text AS payload_text,
              headers, created_at, source_topic, source_partition, source_offset
), counts AS (
SELECT
    (SELECT count(*) FROM {temp}) AS total,
    (SELECT count(*) FROM fresh) AS fresh,
    (SELECT count(*) FROM cand) AS cand,
    (SELECT count(*) FROM upserted) AS changed,
    (SELECT count(*) FROM upserted WHERE inserted) AS inserted,
    (SELECT count(*) FROM stamped) AS stamped,
    (SELECT count(*) FROM outboxed) AS outboxed,
    (SELECT count(*) FROM {temp} i JOIN {table} t ON t.id = i.id
       WHERE t.version = i.version
         AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.source_id = i.id::text
                                                 AND f.version = i.version)) AS duplicate,
    (SELECT count(*) FROM cand c JOIN {table} t ON t.id = c.id
       WHERE NOT EXISTS (SELECT 1 FROM upserted u WHERE u.id = c.id)
         AND {incoming_differs}) AS not_owner
)
-- The counts on every row, with the outbox entries this statement wrote (one row with no
-- entry when it wrote none): the sink publishes them after commit without reading them back.
SELECT counts.*, o.* FROM counts LEFT JOIN outboxed o ON true ORDER BY o.id
"""  # noqa: S608
    return _Statements(temp, create, copy, merge, frozenset(c.name for c in cols if c.json), names)


def change_version(entity: Canonical) -> str:
    """The version part of a change's event id (``ce_id``). A 1С version is its DataVersion
    alone — the id the bridge answered the POST with (``change_id(entity, Ref_Key,
    DataVersion)``), so one id follows a 1С change from the bridge to egress; any other
    source's is prefixed with the source, so equal version strings of two sources differ."""
    return entity.version if entity.source == "onec" else f"{entity.source}:{entity.version}"


def identity_only(entity: Canonical) -> bool:
    """A deletion that carries nothing but the object's identity: every content field is at
    its default (or empty, for required fields)."""
    if not entity.deleted:
        return False
    for name in entity.content_fields():
        info = type(entity).model_fields[name]
        value = getattr(entity, name)
        empty = (
            info.get_default(call_default_factory=True)
            if not info.is_required()
            else type(value)()
            if value is not None
            else None
        )
        if value != empty:
            return False
    return True


def _value(model_dump: dict[str, Any], name: str, is_json: bool) -> Any:
    value = model_dump[name]
    if is_json:
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def rounds(batch: list[Incoming]) -> list[list[tuple[int, Incoming]]]:
    """Split a batch so each round holds an id at most once, keeping batch order."""
    seen: dict[Any, int] = defaultdict(int)
    out: list[list[tuple[int, Incoming]]] = []
    for seq, rec in enumerate(batch):
        n = seen[rec.entity.id]
        seen[rec.entity.id] += 1
        if n == len(out):
            out.append([])
        out[n].append((seq, rec))
    return out


async def merge(
    conn: AsyncConnection,
    model: type[Canonical],
    batch: list[Incoming],
    changes: list[OutboxRow] | None = None,
) -> MergeCounts:
    """Merge ``batch`` (all of ``model``) inside the caller's transaction. The outbox entries
    it writes are appended to ``changes`` (in outbox order) when given: the caller publishes
    them once the transaction committed (:meth:`OutboxRelay.publish_committed`)."""
    totals = MergeCounts()
    if not batch:
        return totals
    raw = await conn.get_raw_connection()
    pg = raw.driver_connection  # psycopg AsyncConnection: COPY is not exposed by SQLAlchemy
    assert pg is not None  # a checked-out connection always has its driver's
    async with pg.cursor() as cur:
        await cur.execute(_statements(model).create_temp)
        for whole in rounds(batch):
            # Ids are distinct within a round, so its deletions may run as their own statement.
            for deletions in (False, True):
                part = [(seq, rec) for seq, rec in whole if identity_only(rec.entity) == deletions]
                if part:
                    totals.add(
                        await _merge_part(cur, _statements(model, deletions), model, part, changes)
                    )
    return totals


async def _merge_part(
    cur,
    st: _Statements,
    model: type[Canonical],
    part: list[tuple[int, Incoming]],
    changes: list[OutboxRow] | None,
) -> MergeCounts:
    # The temp table empties only at commit: each statement starts empty. DELETE, not
    # TRUNCATE: a few hundred rows, and TRUNCATE gives the table new files every round.
    await cur.execute(f"DELETE FROM {st.temp}")  # noqa: S608 — the name comes from the model
    async with cur.copy(st.copy) as copy:
        for seq, rec in part:
            ent = rec.entity
            dump = ent.model_dump(mode="python")
            trace = (
                seq,
                rec.source_topic,
                rec.source_partition,
                rec.source_offset,
                json.dumps(rec.headers, ensure_ascii=False),
                change_id(model.ENTITY, str(ent.id), change_version(ent)),
            )
            await copy.write_row(
                trace + tuple(_value(dump, n, n in st.json_columns) for n in st.names)
            )
    await cur.execute(st.merge)
    rows = await cur.fetchall()
    total, fresh, cand, changed, inserted, _stamped, _outboxed, duplicate, not_owner = rows[0][:9]
    if changes is not None:
        changes += [OutboxRow(*row[9:]) for row in rows if row[9] is not None]
    return MergeCounts(
        total=total,
        changed=changed,
        inserted=inserted,
        duplicate=duplicate,
        stale=total - fresh - duplicate + (fresh - cand),
        not_owner=not_owner,
        unchanged=cand - changed - not_owner,
    )
