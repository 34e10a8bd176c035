"""The OData poller's state in PostgreSQL: leadership, scan cursor and the seen-record cache.

Tables (migration 0003): ``onec_odata_cursor`` (one row per entity set: current scan,
how far it got, last reconcile) and ``onec_odata_seen`` (one row per record: identity,
last version read, last version published, last scan that saw it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

# Namespaces these advisory locks away from every other advisory lock on the database.
_LOCK_CLASS = 0x31434F44


@dataclass(frozen=True)
class Cursor:
    """Where the scan of one entity set stands."""

    entity_set: str
    scan_id: int
    scan_skip: int
    reconciled_at: datetime | None


@dataclass(frozen=True)
class Seen:
    """One record as the poller last read it."""

    key: str
    ident: dict[str, Any]
    data_version: str
    published_version: str | None


@asynccontextmanager
async def leadership(engine: AsyncEngine, entity_set: str) -> AsyncIterator[bool]:
    """True while this process holds the entity set's poller lock, False if another does.

    A session-level advisory lock on a connection kept for the block: a process that dies
    loses its connection and with it the lock, so leadership never outlives its holder.
    """
    async with engine.connect() as conn:
        got = bool(
            await conn.scalar(
                text("SELECT pg_try_advisory_lock(:cls, hashtext(:s))"),
                {"cls": _LOCK_CLASS, "s": entity_set},
            )
        )
        await conn.commit()
        try:
            yield got
        finally:
            if got:
                try:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:cls, hashtext(:s))"),
                        {"cls": _LOCK_CLASS, "s": entity_set},
                    )
                    await conn.commit()
                except Exception:  # noqa: BLE001 — any failure: drop the connection, and the lock with it
                    log.warning(
                        "could not release the poller lock; dropping the connection",
                        extra={"entity_set": entity_set},
                    )
                    await conn.invalidate()


async def open_scan(conn: AsyncConnection, entity_set: str) -> Cursor:
    """Resume the scan in progress, or start the next one (scan id + 1, from the top)."""
    await conn.execute(
        text("INSERT INTO onec_odata_cursor (entity_set) VALUES (:s) ON CONFLICT DO NOTHING"),
        {"s": entity_set},
    )
    row = (
        await conn.execute(
            text(
                "UPDATE onec_odata_cursor SET "
                "scan_id = CASE WHEN scan_in_progress THEN scan_id ELSE scan_id + 1 END, "
                "scan_skip = CASE WHEN scan_in_progress THEN scan_skip ELSE 0 END, "
                "scan_started_at = CASE WHEN scan_in_progress THEN scan_started_at ELSE now() END, "
                "scan_in_progress = true, updated_at = now() "
                "WHERE entity_set = :s RETURNING scan_id, scan_skip, reconciled_at"
            ),
            {"s": entity_set},
        )
    ).one()
    return Cursor(entity_set, row.scan_id, row.scan_skip, row.reconciled_at)


async def advance(conn: AsyncConnection, entity_set: str, skip: int) -> None:
    """Record that the current scan has handled its first ``skip`` rows."""
    await conn.execute(
        text(
            "UPDATE onec_odata_cursor SET scan_skip = :k, updated_at = now() WHERE entity_set = :s"
        ),
        {"s": entity_set, "k": skip},
    )


async def complete_scan(conn: AsyncConnection, entity_set: str) -> None:
    """Mark the current scan complete: the next one starts from the top."""
    await conn.execute(
        text(
            "UPDATE onec_odata_cursor SET scan_in_progress = false, "
            "scan_completed_at = now(), updated_at = now() WHERE entity_set = :s"
        ),
        {"s": entity_set},
    )


async def mark_reconciled(conn: AsyncConnection, entity_set: str) -> None:
    """Record that deletions were reconciled against the last complete scan."""
    await conn.execute(
        text(
            "UPDATE onec_odata_cursor SET reconciled_at = now(), updated_at = now() "
            "WHERE entity_set = :s"
        ),
        {"s": entity_set},
    )


async def published_versions(
    conn: AsyncConnection, entity_set: str, keys: list[str]
) -> dict[str, str | None]:
    """Key -> last published version (None: read but never published) for known keys."""
    if not keys:
        return {}
    rows = await conn.execute(
        text(
            "SELECT record_key, published_version FROM onec_odata_seen "
            "WHERE entity_set = :s AND record_key = ANY(:keys)"
        ),
        {"s": entity_set, "keys": keys},
    )
    return {r.record_key: r.published_version for r in rows}


async def remember(
    conn: AsyncConnection, entity_set: str, scan_id: int, rows: list[tuple[Seen, bool]]
) -> None:
    """Upsert records read in scan ``scan_id``; the flag says the version was published now."""
    if not rows:
        return
    await conn.execute(
        text(
            "INSERT INTO onec_odata_seen AS t (entity_set, record_key, ident, data_version, "
            "published_version, last_seen_scan) VALUES (:s, :k, CAST(:ident AS jsonb), :v, "
            "CASE WHEN :now_published THEN CAST(:v AS text) END, :scan) "
            "ON CONFLICT (entity_set, record_key) DO UPDATE SET data_version = excluded.data_version, "
            "ident = excluded.ident, last_seen_scan = excluded.last_seen_scan, updated_at = now(), "
            "published_version = COALESCE(excluded.published_version, t.published_version)"
        ),
        [
            {
                "s": entity_set,
                "k": seen.key,
                "ident": json.dumps(seen.ident, ensure_ascii=False),
                "v": seen.data_version,
                "now_published": published,
                "scan": scan_id,
            }
            for seen, published in rows
        ],
    )


async def unseen(conn: AsyncConnection, entity_set: str, scan_id: int) -> list[Seen]:
    """Records not seen by scan ``scan_id``: candidates for deletion after it completed."""
    rows = await conn.execute(
        text(
            "SELECT record_key, ident, data_version, published_version FROM onec_odata_seen "
            "WHERE entity_set = :s AND last_seen_scan < :scan ORDER BY record_key"
        ),
        {"s": entity_set, "scan": scan_id},
    )
    return [Seen(r.record_key, r.ident, r.data_version, r.published_version) for r in rows]


async def forget(conn: AsyncConnection, entity_set: str, keys: list[str]) -> None:
    """Drop records whose deletion was published (a key that comes back is new again)."""
    if keys:
        await conn.execute(
            text("DELETE FROM onec_odata_seen WHERE entity_set = :s AND record_key = ANY(:keys)"),
            {"s": entity_set, "keys": keys},
        )
