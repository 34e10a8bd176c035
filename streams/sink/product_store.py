"""Version-aware, batched upsert of products with their outbox entries in one transaction.

One batch = COPY into a temp table + one statement of data-modifying CTEs:
  1. remember every (id, version) in source_version; the ones not seen before are new;
  2. upsert the newest new version of each product (never an older or equal one);
  3. write one outbox entry per new version, in partition order.
A replayed batch finds every version already seen and changes nothing (invariant 4); a
replayed old version is "seen" too and never overwrites the newer row (invariant 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from mmstream.envelope import change_id
from mmstream.models.product import Product

_COLUMNS = (
    "seq", "source_topic", "source_partition", "source_offset", "id", "source", "version",
    "code", "name", "full_name", "article", "barcode", "parent_id", "unit_id", "is_folder",
    "is_service", "deleted", "properties", "event_id", "headers",
)

_CREATE_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS incoming_product (
    seq integer, source_topic text, source_partition integer, source_offset bigint,
    id uuid, source text, version text, code text, name text, full_name text, article text,
    barcode text, parent_id uuid, unit_id uuid, is_folder boolean, is_service boolean, deleted boolean,
    properties jsonb, event_id uuid, headers jsonb
) ON COMMIT DELETE ROWS
"""

_MERGE = """
WITH fresh AS (
    INSERT INTO source_version (entity, source_id, version)
    SELECT DISTINCT 'product', id::text, version FROM incoming_product
    ON CONFLICT DO NOTHING
    RETURNING source_id, version
), new_rows AS (
    SELECT DISTINCT ON (i.id, i.version) i.*
    FROM incoming_product i
    JOIN fresh f ON f.source_id = i.id::text AND f.version = i.version
    ORDER BY i.id, i.version, i.seq
), latest AS (
    SELECT DISTINCT ON (id) * FROM new_rows ORDER BY id, seq DESC
), upserted AS (
    INSERT INTO product AS p (id, source, version, code, name, full_name, article, barcode,
                              parent_id, unit_id, is_folder, is_service, deleted, properties,
                              event_id)
    SELECT id, source, version, code, name, full_name, article, barcode, parent_id, unit_id,
           is_folder, is_service, deleted, properties, event_id
    FROM latest
    ON CONFLICT (id) DO UPDATE SET
        source = excluded.source, version = excluded.version, code = excluded.code,
        name = excluded.name, full_name = excluded.full_name, article = excluded.article,
        barcode = excluded.barcode, parent_id = excluded.parent_id, unit_id = excluded.unit_id,
        is_folder = excluded.is_folder, is_service = excluded.is_service,
        deleted = excluded.deleted, properties = excluded.properties,
        event_id = excluded.event_id, updated_at = now()
    WHERE p.version IS DISTINCT FROM excluded.version
    RETURNING p.id
), outboxed AS (
    INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic,
                        source_partition, source_offset, payload, headers)
    SELECT n.event_id, 'product', n.id::text,
           CASE WHEN n.deleted THEN 'delete' ELSE 'upsert' END, n.version, n.source_topic,
           n.source_partition, n.source_offset,
           jsonb_build_object(
               'id', n.id, 'source', n.source, 'version', n.version, 'code', n.code,
               'name', n.name, 'full_name', n.full_name, 'article', n.article,
               'barcode', n.barcode, 'parent_id', n.parent_id, 'unit_id', n.unit_id, 'is_folder', n.is_folder,
               'is_service', n.is_service, 'deleted', n.deleted, 'properties', n.properties),
           n.headers
    FROM new_rows n
    ORDER BY n.seq
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
SELECT
    (SELECT count(*) FROM new_rows) AS new_versions,
    (SELECT count(*) FROM upserted) AS upserted,
    (SELECT count(*) FROM outboxed) AS outboxed,
    -- A join, not EXISTS on product: the planner turns that EXISTS into a hashed scan of
    -- the whole table per batch, which slows every batch as the table grows.
    (SELECT count(*) FROM incoming_product i LEFT JOIN product p ON p.id = i.id
       WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.seq = i.seq)
         AND (p.version = i.version
              OR EXISTS (SELECT 1 FROM new_rows n WHERE n.id = i.id AND n.version = i.version)))
      AS duplicates,
    (SELECT count(*) FROM incoming_product) AS total
"""


@dataclass(frozen=True)
class IncomingProduct:
    """A normalized product and where its raw record came from."""

    product: Product
    source_topic: str
    source_partition: int
    source_offset: int
    headers: dict[str, str]


@dataclass(frozen=True)
class MergeResult:
    """Counts of one merged batch; ``stale`` = versions seen before that are not current."""

    total: int
    new_versions: int
    upserted: int
    duplicates: int

    @property
    def stale(self) -> int:
        return self.total - self.new_versions - self.duplicates


def _row(seq: int, rec: IncomingProduct) -> tuple:
    p = rec.product
    return (
        seq, rec.source_topic, rec.source_partition, rec.source_offset, p.id, p.source,
        p.version, p.code, p.name, p.full_name, p.article, p.barcode, p.parent_id, p.unit_id, p.is_folder,
        p.is_service, p.deleted,
        json.dumps([item.model_dump() for item in p.properties], ensure_ascii=False),
        change_id("product", str(p.id), p.version),
        json.dumps(rec.headers, ensure_ascii=False),
    )


async def merge(conn: AsyncConnection, batch: list[IncomingProduct]) -> MergeResult:
    """Merge a batch inside the caller's transaction (``conn`` must be in one)."""
    if not batch:
        return MergeResult(0, 0, 0, 0)
    raw = await conn.get_raw_connection()
    pg = raw.driver_connection  # psycopg AsyncConnection: COPY is not exposed by SQLAlchemy
    async with pg.cursor() as cur:
        await cur.execute(_CREATE_TEMP)
        # The temp table empties only at commit: a second merge in one transaction must not
        # see the first one's rows.
        await cur.execute("TRUNCATE incoming_product")
        async with cur.copy(f"COPY incoming_product ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for seq, rec in enumerate(batch):
                await copy.write_row(_row(seq, rec))
        await cur.execute(_MERGE)
        new_versions, upserted, _outboxed, duplicates, total = await cur.fetchone()
    return MergeResult(total=total, new_versions=new_versions, upserted=upserted,
                       duplicates=duplicates)
