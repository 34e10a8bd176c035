"""The lossless fallback: a cursor poller that lists what changed on the portal.

Bitrix24 sends each event once and never retries, so an event lost on the way (the bridge
down, a network error) would be a lost change. The poller lists every configured entity
by modification time and publishes an ids-only sighting (kind ``POLL``) per changed row
to ``raw.bitrix24.event`` — the same path events take, so the one enrichment serves both,
and its version check makes a change seen by an event and by the poller appear once.

Cursor: per (portal, entity) in ``bitrix24_poll_cursor``: ``since``, the highest
modification time listed, and ``seen_ids``, the rows already listed at exactly that time.
Times have one-second resolution, so each cycle first lists the ``since`` second again and
publishes rows not seen there yet (a change committed late within that second), then
pages on with ``>since``. Every query is a first page (keyset paging, ``start=-1`` where
the method allows it): offset paging would skip rows that move while being paged. A second
holding more rows than a page is drained by ``>ID`` within it. The cursor is saved after
each page is acknowledged by the broker; a crash re-lists that page (harmless: sightings
are deduplicated by version in the enrichment).

Known limit: a row changed twice within one second after it was listed is not listed
again (its version did not change); the event path and the reconcile job cover it.

Budget: the portal's request budget (``bitrix24.rate_per_s``) is shared with enrichment and
egress, so a cycle is bounded: an idle entity costs two list calls (the ``since`` second
again, then ``>since``), and a backlog (the first cycle, or a long outage) is paged through
at most ``max_pages`` pages per entity and cycle — the cursor resumes there next cycle.
:func:`budget_share` is what the worker logs at start.

Leader guard: a PostgreSQL advisory lock per portal, so only one worker polls at a time.
A worker without it skips the cycle.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.events import POLL, EventRef, cloud_event
from mmstream.envelope import now_iso
from mmstream.kafka.producer import AckedProducer, OutRecord
from stages.enrich.entities import SPECS, Listing

log = logging.getLogger(__name__)
PAGE = 50

_LOCK = text("SELECT pg_try_advisory_lock(hashtext('bitrix24-poll'), hashtext(:portal))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtext('bitrix24-poll'), hashtext(:portal))")
_LOAD = text(
    "SELECT since, seen_ids FROM bitrix24_poll_cursor WHERE portal = :portal AND entity = :entity"
)
_SAVE = text(
    "INSERT INTO bitrix24_poll_cursor (portal, entity, since, seen_ids) "
    "VALUES (:portal, :entity, :since, CAST(:seen AS text[])) "
    "ON CONFLICT (portal, entity) DO UPDATE SET since = excluded.since, "
    "seen_ids = excluded.seen_ids, updated_at = now()"
)
_ID = re.compile(r"^[1-9][0-9]{0,18}$")


@dataclass
class Cursor:
    """Where one entity's listing stands: the last time listed and the ids listed at it."""

    since: str | None = None
    seen: set[str] = field(default_factory=set)


def calls_per_cycle(entities: int, max_pages: int) -> tuple[int, int]:
    """(idle, worst) list calls one cycle makes over ``entities`` entities: two each when
    nothing changed; the ``since`` second plus ``max_pages`` pages, each full page followed
    by a re-list of its top second, when a backlog is being paged through (a second holding
    more rows than a page costs more, rarely)."""
    return 2 * entities, entities * (1 + 2 * max_pages)


def budget_share(
    entities: int, max_pages: int, interval_s: float, rate_per_s: float
) -> tuple[float, float]:
    """(idle, worst) share of the portal's request budget the poller takes."""
    idle, worst = calls_per_cycle(entities, max_pages)
    per_interval = interval_s * rate_per_s
    return idle / per_interval, worst / per_interval


def parse_entities(names: list[str]) -> list[tuple[str, str | None]]:
    """``["deal", "item:128"]`` -> ``[("deal", None), ("item", "128")]``; unknown names raise."""
    out = []
    for name in names:
        entity, _, type_id = name.partition(":")
        if (
            entity not in SPECS
            or (entity == "item") != bool(type_id)
            or (type_id and not _ID.match(type_id))
        ):
            raise ValueError(
                f"cannot poll {name!r}: use deal, contact, company, task, "
                "product or item:<entityTypeId>"
            )
        out.append((entity, type_id or None))
    return out


class CursorPoller:
    """Lists changed entities of one portal and publishes POLL sightings."""

    def __init__(
        self,
        engine: AsyncEngine,
        client: Bitrix24Client,
        producer: AckedProducer,
        *,
        event_topic: str,
        portal: str,
        entities: list[str],
        iblock_id: int,
        max_pages: int | None = None,
    ) -> None:
        """``portal``: the portal's host (lock, cursor and ``ce_source`` name it);
        ``max_pages``: pages listed per entity and cycle (None: until done)."""
        self.engine = engine
        self.client = client
        self.producer = producer
        self.event_topic = event_topic
        self.portal = portal
        self.entities = parse_entities(entities)
        self.iblock_id = iblock_id
        self.max_pages = max_pages

    async def poll_once(self) -> int | None:
        """One cycle over every entity; sightings published, or None without the lock."""
        async with self.engine.connect() as lock_conn:
            held = await lock_conn.scalar(_LOCK, {"portal": self.portal})
            await lock_conn.commit()  # a session lock: no transaction left open meanwhile
            if not held:
                return None
            try:
                total = 0
                for entity, type_id in self.entities:
                    total += await self._poll(entity, type_id)
                return total
            finally:
                await lock_conn.execute(_UNLOCK, {"portal": self.portal})
                await lock_conn.commit()

    async def _poll(self, entity: str, type_id: str | None) -> int:
        name = f"{entity}:{type_id}" if type_id else entity
        listing = SPECS[entity].listing
        cursor = await self._load(name)
        published, pages = 0, 0
        if cursor.since is not None:
            published += await self._drain_second(entity, type_id, name, cursor)
        while True:
            if self.max_pages is not None and pages >= self.max_pages:
                # The budget of this cycle is spent: the saved cursor resumes here next cycle.
                log.info(
                    "bitrix24 poll continues next cycle",
                    extra={"entity": name, "until": cursor.since},
                )
                return published
            pages += 1
            flt = {f">{listing.version_filter}": cursor.since} if cursor.since else {}
            rows, full = await self._list(entity, type_id, flt, listing.order)
            if not rows:
                return published
            await self._publish(entity, type_id, rows)
            published += len(rows)
            top = str(rows[-1][listing.row_version])
            at_top = {str(r[listing.row_id]) for r in rows if str(r[listing.row_version]) == top}
            cursor = Cursor(top, at_top | (cursor.seen if top == cursor.since else set()))
            if full:  # the top second may hold rows beyond this page
                published += await self._drain_second(entity, type_id, name, cursor)
            await self._save(name, cursor)
            if not full:
                return published

    async def _drain_second(
        self, entity: str, type_id: str | None, name: str, cursor: Cursor
    ) -> int:
        """Publish rows modified at exactly ``cursor.since`` that were not listed yet."""
        listing = SPECS[entity].listing
        after, published = 0, 0
        while True:
            rows, full = await self._list(
                entity,
                type_id,
                {listing.version_filter: cursor.since, f">{listing.id_filter}": after},
                {listing.id_filter: "ASC"},
            )
            new = [r for r in rows if str(r[listing.row_id]) not in cursor.seen]
            if new:
                await self._publish(entity, type_id, new)
                cursor.seen |= {str(r[listing.row_id]) for r in new}
                published += len(new)
                await self._save(name, cursor)
            if not full or not rows:
                return published
            after = max(int(r[listing.row_id]) for r in rows)

    async def _list(
        self, entity: str, type_id: str | None, flt: dict[str, Any], order: dict[str, str]
    ) -> tuple[list[dict[str, Any]], bool]:
        """One first page of a listing: (usable rows, whether the page was full)."""
        listing: Listing = SPECS[entity].listing
        params: dict[str, Any] = {
            "filter": flt,
            "order": order,
            "select": listing.select,
            "start": listing.start,
        }
        if entity == "item":
            params["entityTypeId"] = int(type_id or 0)
        if entity == "product":
            params["filter"] = {"iblockId": self.iblock_id, **flt}
        result = await self.client.call(listing.method, params)
        if listing.rows_key is not None:
            # An empty wrapper comes as [] (PHP), not as {"tasks": []}.
            result = result.get(listing.rows_key) if isinstance(result, dict) else []
        rows = result if isinstance(result, list) else []
        valid = [
            r
            for r in rows
            if isinstance(r, dict)
            and _ID.match(str(r.get(listing.row_id, "")))
            and r.get(listing.row_version)
        ]
        if len(valid) < len(rows):
            log.warning(
                "rows without id or version skipped",
                extra={"entity": entity, "skipped": len(rows) - len(valid)},
            )
        # Whether the page was full decides paging: count what the portal sent.
        return valid, len(rows) >= PAGE

    async def _publish(self, entity: str, type_id: str | None, rows: list[dict[str, Any]]) -> None:
        listing = SPECS[entity].listing
        now, ts = now_iso(), str(int(time.time()))
        out = []
        for row in rows:
            version = str(row[listing.row_version])
            ref = EventRef(entity, str(row[listing.row_id]), POLL, POLL, type_id)
            record = ref.record(
                member_id="", domain=self.portal, ts=ts, received_at=now, version=version
            )
            event = cloud_event(ref, origin=self.portal, occurrence=f"{POLL}:{version}", time=now)
            out.append(
                OutRecord(
                    self.event_topic,
                    json.dumps(record, separators=(",", ":")).encode(),
                    ref.key.encode(),
                    event.headers(),
                )
            )
        await self.producer.send_many(out)
        log.info(
            "bitrix24 changes polled",
            extra={
                "entity": entity,
                "rows": len(rows),
                "until": str(rows[-1][listing.row_version]),
            },
        )

    async def _load(self, name: str) -> Cursor:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_LOAD, {"portal": self.portal, "entity": name})).first()
        return Cursor() if row is None else Cursor(row.since, set(row.seen_ids))

    async def _save(self, name: str, cursor: Cursor) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                _SAVE,
                {
                    "portal": self.portal,
                    "entity": name,
                    "since": cursor.since,
                    "seen": sorted(cursor.seen),
                },
            )
