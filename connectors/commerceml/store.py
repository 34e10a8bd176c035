"""The exchange's state in PostgreSQL (migration 0005): sessions, uploaded files (as
chunks), and the orders recorded for export to 1С. Shared by every bridge replica."""

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
    """An order recorded for 1С: the row id and its ``Документ`` element."""

    id: int
    document_id: str
    document: str


class ExchangeStore:
    """Async access to the exchange tables."""

    def __init__(self, engine: AsyncEngine, session_ttl_s: int, *,
                 max_file_bytes: int = MAX_FILE_BYTES, max_session_bytes: int = MAX_SESSION_BYTES,
                 max_total_bytes: int = MAX_TOTAL_BYTES, max_sessions: int = MAX_SESSIONS) -> None:
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
            live = (await conn.execute(text(
                "SELECT count(*) AS n, ceil(extract(epoch FROM min(expires_at) - now())) AS wait "
                "FROM commerceml_session"))).one()
            if live.n >= self.max_sessions:
                evicted = (await conn.execute(text(_EVICT_IDLE),
                                              {"n": live.n - self.max_sessions + 1})).all()
                if len(evicted) == live.n - self.max_sessions + 1:
                    live = None
            if live is not None and live.n >= self.max_sessions:
                raise StorageFull(f"{live.n} exchange sessions are open, the most allowed "
                                  f"(max_sessions); the oldest expires in {int(live.wait or 0)} s")
            row = (await conn.execute(text(
                "INSERT INTO commerceml_session (cookie_hash, principal, expires_at) "
                "VALUES (:h, :p, now() + make_interval(secs => :ttl)) RETURNING id"),
                {"h": cookie_hash, "p": principal, "ttl": self.ttl_s})).one()
        return Session(row.id, principal)

    async def session(self, cookie_hash: bytes) -> Session | None:
        """The live session of a cookie (its expiry pushed forward), or None."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(text(
                "UPDATE commerceml_session SET expires_at = now() + make_interval(secs => :ttl) "
                "WHERE cookie_hash = :h AND expires_at > now() RETURNING id, principal"),
                {"h": cookie_hash, "ttl": self.ttl_s})).first()
        return None if row is None else Session(row.id, row.principal)

    # -- files

    async def clear_files(self, session: Session) -> list[StoredFile]:
        """Drop the session's files (a new exchange round starts); returns what was dropped."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(text(
                "DELETE FROM commerceml_file WHERE session_id = :s "
                "RETURNING filename, size, chunks, processed_at IS NOT NULL AS processed"),
                {"s": session.id})).all()
        return [StoredFile(*r) for r in rows]

    async def append(self, session: Session, filename: str, data: bytes) -> StoredFile:
        """Append one chunk. A file that was imported already starts over (1С sends a new
        file under the same name). TooLarge when the file or the session would exceed its cap."""
        async with self.engine.begin() as conn:
            # First, so that every append takes its locks in the same order.
            await conn.execute(text(_QUOTA_LOCK))
            await conn.execute(text(
                "INSERT INTO commerceml_file (session_id, filename) VALUES (:s, :f) "
                "ON CONFLICT DO NOTHING"), {"s": session.id, "f": filename})
            # Row lock: chunks of one file are appended one after the other.
            row = (await conn.execute(text(
                "SELECT size, chunks, processed_at IS NOT NULL AS processed FROM commerceml_file "
                "WHERE session_id = :s AND filename = :f FOR UPDATE"),
                {"s": session.id, "f": filename})).one()
            size, chunks = (0, 0) if row.processed else (row.size, row.chunks)
            if row.processed:
                await conn.execute(text(
                    "DELETE FROM commerceml_file_chunk WHERE session_id = :s AND filename = :f"),
                    {"s": session.id, "f": filename})
            if size + len(data) > self.max_file_bytes:
                raise TooLarge(f"{filename} would exceed {self.max_file_bytes} bytes")
            total = (await conn.execute(text(
                "SELECT coalesce(sum(size), 0) FROM commerceml_file WHERE session_id = :s"),
                {"s": session.id})).scalar_one()
            if total - row.size + size + len(data) > self.max_session_bytes:
                raise TooLarge(f"the files of this exchange would exceed {self.max_session_bytes} bytes")
            everything = await self._total(conn)
            if everything - row.size + size + len(data) > self.max_total_bytes:
                # Expired sessions' files count until purged: purge, then look again.
                await conn.execute(text(_PURGE_EXPIRED))
                everything = await self._total(conn)
                if everything - row.size + size + len(data) > self.max_total_bytes:
                    raise StorageFull(f"the exchange storage is full: all sessions' files would exceed "
                                      f"{self.max_total_bytes} bytes (max_total_bytes); retry later")
            await conn.execute(text(
                "INSERT INTO commerceml_file_chunk (session_id, filename, seq, data) "
                "VALUES (:s, :f, :seq, :d)"), {"s": session.id, "f": filename, "seq": chunks, "d": data})
            await conn.execute(text(
                "UPDATE commerceml_file SET size = :size, chunks = :chunks, received_at = now(), "
                "processed_at = NULL WHERE session_id = :s AND filename = :f"),
                {"s": session.id, "f": filename, "size": size + len(data), "chunks": chunks + 1})
        return StoredFile(filename, size + len(data), chunks + 1, False)

    @staticmethod
    async def _total(conn) -> int:
        return (await conn.execute(text("SELECT coalesce(sum(size), 0) FROM commerceml_file"))).scalar_one()

    async def file(self, session: Session, filename: str) -> StoredFile | None:
        """The stored file of that name, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(text(
                "SELECT filename, size, chunks, processed_at IS NOT NULL FROM commerceml_file "
                "WHERE session_id = :s AND filename = :f"), {"s": session.id, "f": filename})).first()
        return None if row is None else StoredFile(*row)

    async def archives(self, session: Session) -> list[StoredFile]:
        """The session's zip archives (by name or by content), oldest first."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT f.filename, f.size, f.chunks, f.processed_at IS NOT NULL FROM commerceml_file f "
                "JOIN commerceml_file_chunk c ON c.session_id = f.session_id "
                "AND c.filename = f.filename AND c.seq = 0 "
                "WHERE f.session_id = :s AND (lower(f.filename) LIKE '%.zip' "
                "OR substring(c.data FROM 1 FOR 4) = :magic) ORDER BY f.received_at, f.filename"),
                {"s": session.id, "magic": ZIP_MAGIC})).all()
        return [StoredFile(*r) for r in rows]

    async def chunks(self, session: Session, stored: StoredFile) -> AsyncIterator[bytes]:
        """The file's chunks in order, one query each (memory holds one chunk at a time)."""
        for seq in range(stored.chunks):
            async with self.engine.connect() as conn:
                data = (await conn.execute(text(
                    "SELECT data FROM commerceml_file_chunk WHERE session_id = :s AND filename = :f "
                    "AND seq = :seq"), {"s": session.id, "f": stored.filename, "seq": seq})).scalar_one()
            yield data

    async def edges(self, session: Session, stored: StoredFile, size: int) -> tuple[bytes, bytes]:
        """The first and the last ``size`` bytes of a stored file (the last from its last two
        chunks, so a short last chunk still shows what precedes it)."""
        last = stored.chunks - 1
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT seq, substring(data FROM 1 FOR :n) AS head, "
                "substring(data FROM greatest(length(data) - :n + 1, 1)) AS tail "
                "FROM commerceml_file_chunk WHERE session_id = :s AND filename = :f "
                "AND seq IN (0, :before, :last) ORDER BY seq"),
                {"s": session.id, "f": stored.filename, "n": size, "before": last - 1,
                 "last": last})).all()
        if not rows:
            return b"", b""
        tails = b"".join(bytes(r.tail) for r in rows if r.seq >= last - 1)
        return bytes(rows[0].head), tails[-size:]

    async def mark_processed(self, session: Session, filename: str) -> None:
        """Record that the file was imported (its next chunk starts a new file)."""
        async with self.engine.begin() as conn:
            await conn.execute(text(
                "UPDATE commerceml_file SET processed_at = now() WHERE session_id = :s AND filename = :f"),
                {"s": session.id, "f": filename})

    # -- orders for export

    async def pending_orders(self) -> list[ExportOrder]:
        """Orders 1С has not acknowledged yet (sent before or not), oldest first."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT id, document_id, document FROM commerceml_order_export "
                "WHERE acknowledged_at IS NULL ORDER BY id"))).all()
        return [ExportOrder(*r) for r in rows]

    async def mark_sent(self, session: Session, ids: list[int]) -> None:
        """Record that these orders went to 1С in this session."""
        if not ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(text(
                "UPDATE commerceml_order_export SET sent_session = :s, sent_at = now() "
                "WHERE id = ANY(:ids)"), {"s": session.id, "ids": ids})

    async def acknowledge_orders(self, session: Session) -> int:
        """1С confirmed (``mode=success``) what this session sent; returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(text(
                "UPDATE commerceml_order_export SET acknowledged_at = now() "
                "WHERE sent_session = :s AND acknowledged_at IS NULL"), {"s": session.id})
        return result.rowcount
