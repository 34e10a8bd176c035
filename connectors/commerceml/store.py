"""The exchange's state in PostgreSQL (migration 0005): sessions, uploaded files (as
chunks), and the orders recorded for export to 1С. Shared by every bridge replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.commerceml.errors import TooLarge

# Caps on what one exchange may park in the database (1С's catalog exports with pictures
# reach hundreds of MiB; beyond these something is wrong).
MAX_FILE_BYTES = 1 << 30
MAX_SESSION_BYTES = 2 << 30
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
                 max_file_bytes: int = MAX_FILE_BYTES, max_session_bytes: int = MAX_SESSION_BYTES) -> None:
        self.engine = engine
        self.ttl_s = session_ttl_s
        self.max_file_bytes = max_file_bytes
        self.max_session_bytes = max_session_bytes

    # -- sessions

    async def open_session(self, cookie_hash: bytes, principal: str) -> Session:
        """Create a session; sessions that expired are purged (with their files) on the way."""
        async with self.engine.begin() as conn:
            await conn.execute(text("DELETE FROM commerceml_session WHERE expires_at < now()"))
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
            await conn.execute(text(
                "INSERT INTO commerceml_file_chunk (session_id, filename, seq, data) "
                "VALUES (:s, :f, :seq, :d)"), {"s": session.id, "f": filename, "seq": chunks, "d": data})
            await conn.execute(text(
                "UPDATE commerceml_file SET size = :size, chunks = :chunks, received_at = now(), "
                "processed_at = NULL WHERE session_id = :s AND filename = :f"),
                {"s": session.id, "f": filename, "size": size + len(data), "chunks": chunks + 1})
        return StoredFile(filename, size + len(data), chunks + 1, False)

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
