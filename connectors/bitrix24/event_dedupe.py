"""Near-duplicate suppression of Bitrix24 events, shared by the bridge and the enrichment.

Bitrix24 often sends one change as several events ~2 s apart. The bridge lets the first
event of a (portal, entity key, event kind) through and drops repeats for
``settings.bitrix24.event_dedupe_window_s`` — but only while the event that passed has not
been fetched yet. Its fetch then starts after the repeat arrived, so it reads the repeat's
change too. Once the enrichment marks the key as fetched (:func:`mark_fetched`, called
BEFORE it calls the portal), the next event passes again: it may carry a change made after
that fetch, and dropping it would lose the change.

This is an optimisation, never the guarantee: a repeat that passes costs one more fetch,
and the enrichment then publishes nothing new (it skips an entity version it already
published), while the sink downstream dedupes by version as well. So when PostgreSQL is
unavailable the bridge publishes without the check (fail open) rather than refuse an event
Bitrix24 will never send again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

# Passes (and restarts the window) when the last passed event is outside the window or was
# fetched since; otherwise the row is left alone and nothing is returned.
_CLAIM = text(
    "INSERT INTO bitrix24_event_seen AS s (member_id, entity_key, kind, seen_at) "
    "VALUES (:member, :key, :kind, now()) "
    "ON CONFLICT (member_id, entity_key, kind) DO UPDATE "
    "SET seen_at = excluded.seen_at, fetched_at = NULL "
    "WHERE s.seen_at <= excluded.seen_at - make_interval(secs => :window) "
    "OR (s.fetched_at IS NOT NULL AND s.fetched_at >= s.seen_at) "
    "RETURNING 1"
)
# An upsert, not an UPDATE: it waits for a claim whose publish is still in flight (an
# UPDATE would not see that uncommitted row and the mark would be lost).
_MARK = text(
    "INSERT INTO bitrix24_event_seen AS s (member_id, entity_key, kind, seen_at, fetched_at) "
    "SELECT m, k, kd, now(), now() FROM unnest(CAST(:members AS text[]), CAST(:keys AS text[]), "
    "CAST(:kinds AS text[])) AS t(m, k, kd) "
    "ON CONFLICT (member_id, entity_key, kind) DO UPDATE SET fetched_at = excluded.fetched_at"
)


@asynccontextmanager
async def first_in_window(
    engine: AsyncEngine | None, *, member_id: str, key: str, kind: str, window_s: float
) -> AsyncIterator[bool]:
    """Yield whether to publish this event (False: a near-duplicate of a pending one).

    The claim is a transaction held open while the caller publishes: it commits only when
    the block ends normally, so a publish that failed leaves no claim that would hide the
    next event. Database trouble yields True (publish anyway) and is logged.
    """
    if engine is None or window_s <= 0:
        yield True
        return
    conn: AsyncConnection | None = None
    first = True
    try:
        conn = await engine.connect()
        await conn.begin()
        first = (
            await conn.execute(
                _CLAIM, {"member": member_id, "key": key, "kind": kind, "window": window_s}
            )
        ).first() is not None
    except Exception as exc:  # noqa: BLE001 — an optimisation must not refuse events
        log.warning(
            "event dedupe unavailable, publishing without it",
            extra={"error": f"{type(exc).__name__}: {exc}"[:300], "subject": key},
        )
        await _close(conn, commit=False)
        conn = None
    try:
        yield first
    except BaseException:
        await _close(conn, commit=False)
        raise
    await _close(conn, commit=True)


async def mark_fetched(conn: AsyncConnection, events: Iterable[tuple[str, str, str]]) -> None:
    """Record that (member_id, entity key, kind) events are about to be fetched."""
    rows = sorted(set(events))  # one lock order for every caller: no deadlocks
    if rows:
        members, keys, kinds = (list(col) for col in zip(*rows, strict=True))
        await conn.execute(_MARK, {"members": members, "keys": keys, "kinds": kinds})


async def _close(conn: AsyncConnection | None, *, commit: bool) -> None:
    if conn is None:
        return
    try:
        if commit:
            await conn.commit()
        else:
            await conn.rollback()
    except Exception as exc:  # noqa: BLE001 — the record is published; a lost claim only
        # lets a later near-duplicate through
        log.warning("event dedupe claim not stored", extra={"error": str(exc)[:300]})
    finally:
        try:
            await conn.close()
        except Exception:  # noqa: BLE001, S110 — the pool discards a broken connection
            pass
