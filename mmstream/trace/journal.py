"""The integration log's writer: entries queued by the egress transports, inserted in
batches by a background task, off the hot path.

A call only ``offer``s its entry to a bounded queue (no I/O, no await). One task per event
loop takes whatever has queued up — one row, or up to ``integration_log_batch`` under load —
and inserts it with one executemany, so the table costs a delivery a dict and a queue slot.
A full queue (PostgreSQL down or slow for long) drops the entry and counts it
(``mm_integration_log_entries_total{outcome="dropped"}``): the log must never stop or
slow the deliveries it describes. A failed insert is logged and counted ("failed").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.settings import RetentionSettings, Settings

log = logging.getLogger(__name__)

ENTRIES = Counter(
    "mm_integration_log_entries_total",
    "Integration log entries by outcome (written, dropped: queue full, failed: insert failed)",
    ["outcome"],
)

INSERT = text("""
    INSERT INTO integration_log (at, target, operation, http_method, url, event_id, request_id,
                                 traceparent, request, status, error, response, latency_ms)
    VALUES (:at, :target, :operation, :http_method, :url, :event_id, :request_id,
            :traceparent, :request, :status, :error, :response, :latency_ms)
""")


@dataclass(frozen=True)
class Entry:
    """One outbound HTTP attempt, already masked (see :mod:`mmstream.trace.masking`)."""

    target: str
    operation: str
    http_method: str
    url: str
    latency_ms: float
    status: int | None = None
    error: str = ""
    request: str = ""
    response: str = ""
    event_id: str = ""
    request_id: str = ""
    traceparent: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Journal:
    """A bounded queue of entries and the task that writes them to ``integration_log``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        capacity: int = 10_000,
        batch: int = 500,
        excerpt_chars: int = 2000,
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.excerpt_chars = excerpt_chars
        self._queue: asyncio.Queue[Entry] = asyncio.Queue(maxsize=capacity)
        self._task: asyncio.Task | None = None
        self._last_warning = 0.0

    @classmethod
    def from_settings(cls, engine: AsyncEngine, retention: RetentionSettings) -> Journal:
        return cls(
            engine,
            capacity=retention.integration_log_queue,
            batch=retention.integration_log_batch,
            excerpt_chars=retention.integration_log_excerpt_chars,
        )

    def offer(self, entry: Entry) -> bool:
        """Queue ``entry`` for writing; False (and counted) when the queue is full."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="integration-log")
        try:
            self._queue.put_nowait(entry)
            return True
        except asyncio.QueueFull:
            ENTRIES.labels("dropped").inc()
            self._warn(
                "integration log queue full: entry dropped", {"capacity": self._queue.maxsize}
            )
            return False

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or has failed)."""
        if self._task is not None and not self._task.done():
            await self._queue.join()

    async def aclose(self) -> None:
        """Write what is queued, then stop the writer."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            rows = [await self._queue.get()]
            while len(rows) < self.batch and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            try:
                await self.write(rows)
                ENTRIES.labels("written").inc(len(rows))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — the log never stops a delivery
                ENTRIES.labels("failed").inc(len(rows))
                self._warn(
                    "integration log write failed; entries lost",
                    {"rows": len(rows), "error": f"{type(exc).__name__}: {exc}"[:300]},
                )
            finally:
                for _ in rows:
                    self._queue.task_done()

    async def write(self, entries: Sequence[Entry]) -> None:
        """Insert ``entries`` (one executemany in one transaction)."""
        async with self.engine.begin() as conn:
            await conn.execute(INSERT, [asdict(e) for e in entries])

    def _warn(self, message: str, extra: dict) -> None:
        # At most one line every 10 s: a down database would otherwise flood the log.
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            log.warning(message, extra=extra)


# One journal per event loop (its queue and task belong to that loop).
_journals: dict[asyncio.AbstractEventLoop, Journal | None] = {}


def install(journal: Journal | None) -> None:
    """Use ``journal`` for the calls made on the running loop (None: no integration log)."""
    _journals[asyncio.get_running_loop()] = journal


def existing() -> Journal | None:
    """The running loop's journal if one was installed or made (never makes one)."""
    return _journals.get(asyncio.get_running_loop())


def current(settings: Settings | None = None) -> Journal | None:
    """The running loop's journal: installed, or made on first use from the process's
    settings (none when no database is configured or the log is switched off)."""
    loop = asyncio.get_running_loop()
    if loop in _journals:
        return _journals[loop]
    for stale in [lp for lp in _journals if lp.is_closed()]:
        del _journals[stale]
    journal: Journal | None = None
    if settings is None:
        from mmstream.settings import get_settings

        settings = get_settings()
    if settings.database_url is not None and settings.retention.integration_log_enabled:
        from mmstream.db.engine import async_engine

        journal = Journal.from_settings(async_engine(settings, pool_size=1), settings.retention)
    _journals[loop] = journal
    return journal
