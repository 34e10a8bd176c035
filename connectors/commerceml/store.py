"""The exchange's state in PostgreSQL (migrations 0005, 0019, 0023): sessions, uploaded files
(as chunks), the names carried from one file of an exchange to the next, and the documents
queued for export to 1С. Shared by every bridge replica.

The export queue (``commerceml_order_export``) holds one row per exported ``Ид``
(:class:`ExportQueue` fills it). A row is pending until 1С confirms, with ``mode=success``
in the session whose ``query`` carried it, the very revision it got; a document changed in
between (a new revision) stays pending and goes again, under the same Ид, so 1С updates
its document rather than making a second one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.commerceml.errors import StorageFull, TooLarge

# Caps on what one exchange may park in the database (1С's catalog exports with pictures
# reach hundreds of MiB; beyond these something is wrong), on what all of them together may
# park, and on how many sessions may be open (each checkauth opens one).
MAX_FILE_BYTES = 1 << 30
MAX_SESSION_BYTES = 2 << 30
MAX_TOTAL_BYTES = 4 << 30
MAX_SESSIONS = 100
# Transaction-level advisory locks: the session count and the total size are checked and
# changed by one transaction at a time, across every bridge replica.
_SESSIONS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('commerceml_sessions'))"
_QUOTA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('commerceml_quota'))"
_PURGE_EXPIRED = "DELETE FROM commerceml_session WHERE expires_at < now()"
# The purge job's statement (connectors/ingress/purge.py): a bounded batch of expired sessions.
PURGE_SESSIONS = text(
    "DELETE FROM commerceml_session WHERE id IN (SELECT id FROM commerceml_session "
    "WHERE expires_at < now() ORDER BY expires_at LIMIT :rows FOR UPDATE SKIP LOCKED)"
)
# The least recently used sessions (expiry slides forward on every request) holding no file
# still to import.
_EVICT_IDLE = (
    "DELETE FROM commerceml_session WHERE id IN (SELECT s.id FROM commerceml_session s "
    "WHERE NOT EXISTS (SELECT 1 FROM commerceml_file f WHERE f.session_id = s.id "
    "AND f.processed_at IS NULL) ORDER BY s.expires_at LIMIT :n) RETURNING id"
)
ZIP_MAGIC = b"PK\x03\x04"
# The names kept for later files (migration 0023): one row per session (cascaded with it),
# and the last full classifier of at most this many catalogs (the least recently updated
# go first). The size of each row is capped by CommerceMLSettings.max_context_bytes.
MAX_CATALOG_CONTEXTS = 20
_PUT_SESSION_CONTEXT = text(
    "INSERT INTO commerceml_session_context (session_id, context, bytes) "
    "VALUES (:s, CAST(:c AS jsonb), :n) ON CONFLICT (session_id) DO UPDATE "
    "SET context = excluded.context, bytes = excluded.bytes, updated_at = now()"
)
_PUT_CATALOG_CONTEXT = text(
    "INSERT INTO commerceml_catalog_context (catalog_id, context, bytes) "
    "VALUES (:k, CAST(:c AS jsonb), :n) ON CONFLICT (catalog_id) DO UPDATE "
    "SET context = excluded.context, bytes = excluded.bytes, updated_at = now()"
)
_EVICT_CATALOG_CONTEXTS = text(
    "DELETE FROM commerceml_catalog_context WHERE catalog_id IN (SELECT catalog_id "
    "FROM commerceml_catalog_context ORDER BY updated_at DESC, catalog_id OFFSET :keep)"
)


@dataclass(frozen=True)
class Session:
    """An authenticated exchange session (one ``checkauth``)."""

    id: int
    principal: str


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file: its total size, chunk count and whether it was imported."""

    filename: str
    size: int
    chunks: int
    processed: bool


@dataclass(frozen=True)
class ExportOrder:
    """An order recorded for 1С: the row id, its ``Документ`` element and its revision."""

    id: int
    document_id: str
    document: str
    revision: int = 1


_PUT_EXPORT = text(
    "INSERT INTO commerceml_order_export AS t (document_id, entity, document) "
    "VALUES (:doc_id, :entity, :document) ON CONFLICT (document_id) DO UPDATE "
    "SET document = excluded.document, entity = excluded.entity, revision = t.revision + 1, "
    "acknowledged_at = NULL, updated_at = now() "
    "WHERE t.document IS DISTINCT FROM excluded.document OR t.entity IS DISTINCT FROM excluded.entity "
    "RETURNING revision"
)


class ExportQueue:
    """The egress side of the export queue: documents the middleware has for 1С."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def put(self, document_id: str, entity: str, document: str) -> int | None:
        """Queue (or re-queue) the document under its Ид. The revision queued, or None when
        the same document is queued already (a retry): nothing changes, nothing is re-sent."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    _PUT_EXPORT, {"doc_id": document_id, "entity": entity, "document": document}
                )
            ).first()
        return None if row is None else row.revision

    async def entities(self, document_ids: list[str]) -> dict[str, str]:
        """Ид -> entity of those among ``document_ids`` the middleware exported."""
        if not document_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT document_id, entity FROM commerceml_order_export "
                        "WHERE document_id = ANY(:ids) AND entity IS NOT NULL"
                    ),
                    {"ids": document_ids},
                )
            ).all()
        return {r.document_id: r.entity for r in rows}


class ExchangeStore:
    """Async access to the exchange tables."""

    def __init__(
        self,
        engine: AsyncEngine,
        session_ttl_s: int,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_session_bytes: int = MAX_SESSION_BYTES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.engine = engine
        self.ttl_s = session_ttl_s
        self.max_file_bytes = max_file_bytes
        self.max_session_bytes = max_session_bytes
        self.max_total_bytes = max_total_bytes
        self.max_sessions = max_sessions

    # -- sessions

    async def open_session(self, cookie_hash: bytes, principal: str) -> Session:
        """Create a session; sessions that expired are purged (with their files) on the way.

        At max_sessions live sessions the least recently used IDLE one (no file waiting to be
        imported) is evicted: 1С logs in again for every exchange, and refusing a login until
        an abandoned session expires (an hour) would stop a healthy exchange. StorageFull only
        when every open session holds an upload in progress (evicting one would break it)."""
        async with self.engine.begin() as conn:
            await conn.execute(text(_SESSIONS_LOCK))
            await conn.execute(text(_PURGE_EXPIRED))
            live = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS n, ceil(extract(epoch FROM min(expires_at) - now())) AS wait "
                        "FROM commerceml_session"
                    )
                )
            ).one()
            full = live.n >= self.max_sessions
            if full:
                evicted = (
                    await conn.execute(text(_EVICT_IDLE), {"n": live.n - self.max_sessions + 1})
                ).all()
                full = len(evicted) < live.n - self.max_sessions + 1
            if full:
                raise StorageFull(
                    f"{live.n} exchange sessions are open, the most allowed "
                    f"(max_sessions); the oldest expires in {int(live.wait or 0)} s"
                )
            row = (
                await conn.execute(
                    text(
                        "INSERT INTO commerceml_session (cookie_hash, principal, expires_at) "
                        "VALUES (:h, :p, now() + make_interval(secs => :ttl)) RETURNING id"
                    ),
                    {"h": cookie_hash, "p": principal, "ttl": self.ttl_s},
                )
            ).one()
        return Session(row.id, principal)

    async def session(self, cookie_hash: bytes) -> Session | None:
        """The live session of a cookie (its expiry pushed forward), or None."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "UPDATE commerceml_session SET expires_at = now() + make_interval(secs => :ttl) "
                        "WHERE cookie_hash = :h AND expires_at > now() RETURNING id, principal"
                    ),
                    {"h": cookie_hash, "ttl": self.ttl_s},
                )
            ).first()
        return None if row is None else Session(row.id, row.principal)

    # -- files

    async def clear_files(self, session: Session) -> list[StoredFile]:
        """Drop the session's files (a new exchange round starts); returns what was dropped."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "DELETE FROM commerceml_file WHERE session_id = :s "
                        "RETURNING filename, size, chunks, processed_at IS NOT NULL AS processed"
                    ),
                    {"s": session.id},
                )
            ).all()
        return [StoredFile(*r) for r in rows]

    async def append(self, session: Session, filename: str, data: bytes) -> StoredFile:
        """Append one chunk. A file that was imported already starts over (1С sends a new
        file under the same name). TooLarge when the file or the session would exceed its cap."""
        async with self.engine.begin() as conn:
            # First, so that every append takes its locks in the same order.
            await conn.execute(text(_QUOTA_LOCK))
            await conn.execute(
                text(
                    "INSERT INTO commerceml_file (session_id, filename) VALUES (:s, :f) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"s": session.id, "f": filename},
            )
            # Row lock: chunks of one file are appended one after the other.
            row = (
                await conn.execute(
                    text(
                        "SELECT size, chunks, processed_at IS NOT NULL AS processed FROM commerceml_file "
                        "WHERE session_id = :s AND filename = :f FOR UPDATE"
                    ),
                    {"s": session.id, "f": filename},
                )
            ).one()
            size, chunks = (0, 0) if row.processed else (row.size, row.chunks)
            if row.processed:
                await conn.execute(
                    text(
                        "DELETE FROM commerceml_file_chunk WHERE session_id = :s AND filename = :f"
                    ),
                    {"s": session.id, "f": filename},
                )
            if size + len(data) > self.max_file_bytes:
                raise TooLarge(f"{filename} would exceed {self.max_file_bytes} bytes")
            total = (
                await conn.execute(
                    text(
                        "SELECT coalesce(sum(size), 0) FROM commerceml_file WHERE session_id = :s"
                    ),
                    {"s": session.id},
                )
            ).scalar_one()
            if total - row.size + size + len(data) > self.max_session_bytes:
                raise TooLarge(
                    f"the files of this exchange would exceed {self.max_session_bytes} bytes"
                )
            everything = await self._total(conn)
            if everything - row.size + size + len(data) > self.max_total_bytes:
                # Expired sessions' files count until purged: purge, then look again.
                await conn.execute(text(_PURGE_EXPIRED))
                everything = await self._total(conn)
                if everything - row.size + size + len(data) > self.max_total_bytes:
                    raise StorageFull(
                        f"the exchange storage is full: all sessions' files would exceed "
                        f"{self.max_total_bytes} bytes (max_total_bytes); retry later"
                    )
            await conn.execute(
                text(
                    "INSERT INTO commerceml_file_chunk (session_id, filename, seq, data) "
                    "VALUES (:s, :f, :seq, :d)"
                ),
                {"s": session.id, "f": filename, "seq": chunks, "d": data},
            )
            await conn.execute(
                text(
                    "UPDATE commerceml_file SET size = :size, chunks = :chunks, received_at = now(), "
                    "processed_at = NULL WHERE session_id = :s AND filename = :f"
                ),
                {"s": session.id, "f": filename, "size": size + len(data), "chunks": chunks + 1},
            )
        return StoredFile(filename, size + len(data), chunks + 1, False)

    @staticmethod
    async def _total(conn) -> int:
        return (
            await conn.execute(text("SELECT coalesce(sum(size), 0) FROM commerceml_file"))
        ).scalar_one()

    async def file(self, session: Session, filename: str) -> StoredFile | None:
        """The stored file of that name, or None."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT filename, size, chunks, processed_at IS NOT NULL FROM commerceml_file "
                        "WHERE session_id = :s AND filename = :f"
                    ),
                    {"s": session.id, "f": filename},
                )
            ).first()
        return None if row is None else StoredFile(*row)

    async def archives(self, session: Session) -> list[StoredFile]:
        """The session's zip archives (by name or by content), oldest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT f.filename, f.size, f.chunks, f.processed_at IS NOT NULL FROM commerceml_file f "
                        "JOIN commerceml_file_chunk c ON c.session_id = f.session_id "
                        "AND c.filename = f.filename AND c.seq = 0 "
                        "WHERE f.session_id = :s AND (lower(f.filename) LIKE '%.zip' "
                        "OR substring(c.data FROM 1 FOR 4) = :magic) ORDER BY f.received_at, f.filename"
                    ),
                    {"s": session.id, "magic": ZIP_MAGIC},
                )
            ).all()
        return [StoredFile(*r) for r in rows]

    async def chunks(self, session: Session, stored: StoredFile) -> AsyncIterator[bytes]:
        """The file's chunks in order, one query each (memory holds one chunk at a time)."""
        for seq in range(stored.chunks):
            async with self.engine.connect() as conn:
                data = (
                    await conn.execute(
                        text(
                            "SELECT data FROM commerceml_file_chunk WHERE session_id = :s AND filename = :f "
                            "AND seq = :seq"
                        ),
                        {"s": session.id, "f": stored.filename, "seq": seq},
                    )
                ).scalar_one()
            yield data

    async def edges(self, session: Session, stored: StoredFile, size: int) -> tuple[bytes, bytes]:
        """The first and the last ``size`` bytes of a stored file (the last from its last two
        chunks, so a short last chunk still shows what precedes it)."""
        last = stored.chunks - 1
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT seq, substring(data FROM 1 FOR :n) AS head, "
                        "substring(data FROM greatest(length(data) - :n + 1, 1)) AS tail "
                        "FROM commerceml_file_chunk WHERE session_id = :s AND filename = :f "
                        "AND seq IN (0, :before, :last) ORDER BY seq"
                    ),
                    {
                        "s": session.id,
                        "f": stored.filename,
                        "n": size,
                        "before": last - 1,
                        "last": last,
                    },
                )
            ).all()
        if not rows:
            return b"", b""
        tails = b"".join(bytes(r.tail) for r in rows if r.seq >= last - 1)
        return bytes(rows[0].head), tails[-size:]

    async def mark_processed(self, session: Session, filename: str) -> None:
        """Record that the file was imported (its next chunk starts a new file)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE commerceml_file SET processed_at = now() WHERE session_id = :s AND filename = :f"
                ),
                {"s": session.id, "f": filename},
            )

    # -- names carried across files (connectors/commerceml/context.py)

    async def context(self, session: Session) -> dict | None:
        """The names stored for the session (JSON), or None."""
        async with self.engine.connect() as conn:
            return await conn.scalar(
                text("SELECT context FROM commerceml_session_context WHERE session_id = :s"),
                {"s": session.id},
            )

    async def catalog_context(self, catalog_id: str) -> dict | None:
        """The names of the catalog's last full classifier (and changes since), or None."""
        async with self.engine.connect() as conn:
            return await conn.scalar(
                text("SELECT context FROM commerceml_catalog_context WHERE catalog_id = :k"),
                {"k": catalog_id},
            )

    async def put_context(
        self,
        session: Session,
        data: str,
        catalog_id: str | None = None,
        catalog_data: str | None = None,
    ) -> None:
        """Store the session's names (JSON text) and, when given, the catalog's."""
        async with self.engine.begin() as conn:
            await conn.execute(
                _PUT_SESSION_CONTEXT, {"s": session.id, "c": data, "n": len(data.encode())}
            )
            if catalog_id and catalog_data is not None:
                await conn.execute(
                    _PUT_CATALOG_CONTEXT,
                    {"k": catalog_id, "c": catalog_data, "n": len(catalog_data.encode())},
                )
                await conn.execute(_EVICT_CATALOG_CONTEXTS, {"keep": MAX_CATALOG_CONTEXTS})

    # -- orders for export

    async def pending_orders(self) -> list[ExportOrder]:
        """Orders 1С has not acknowledged yet (sent before or not), oldest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, document_id, document, revision FROM commerceml_order_export "
                        "WHERE acknowledged_at IS NULL ORDER BY id"
                    )
                )
            ).all()
        return [ExportOrder(*r) for r in rows]

    async def mark_sent(self, session: Session, orders: list[ExportOrder]) -> None:
        """Record that these orders, at the revisions read, went to 1С in this session."""
        if not orders:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE commerceml_order_export e SET sent_session = :s, sent_at = now(), "
                    "sent_revision = v.revision FROM unnest(CAST(:ids AS bigint[]), "
                    "CAST(:revisions AS bigint[])) AS v(id, revision) WHERE e.id = v.id"
                ),
                {
                    "s": session.id,
                    "ids": [o.id for o in orders],
                    "revisions": [o.revision for o in orders],
                },
            )

    async def acknowledge_orders(self, session: Session) -> int:
        """1С confirmed (``mode=success``) what this session sent; returns how many. A row
        changed since (another revision) is not what 1С confirmed: it stays pending."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE commerceml_order_export SET acknowledged_at = now() "
                    "WHERE sent_session = :s AND acknowledged_at IS NULL "
                    "AND sent_revision = revision"
                ),
                {"s": session.id},
            )
        return result.rowcount
