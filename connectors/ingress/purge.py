"""The bridge's purge job: expired Idempotency-Keys, old 1С exchange message numbers and
expired CommerceML exchange sessions (with their uploaded files and the names kept for their
later files: ``commerceml_session_context`` goes with its session, ON DELETE CASCADE), and
the retention of issue 14 item 6 (mmstream/trace/retention.py): integration log entries,
published outbox rows and operator audit rows older than their ``retention.*_days``.

Every ``ingress.purge_interval_s`` each replica deletes what has expired, ``purge_batch_rows``
rows per statement (each its own short transaction, so no long lock or transaction is held),
looping until a statement finds fewer rows than a batch or the run's time budget is spent.
Replicas skip each other's locked rows (SKIP LOCKED) instead of waiting on them. A key
expires ``ingress.idempotency_ttl_s`` after its request; a message number is kept
``ingress.exchange_message_retention_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.commerceml.store import PURGE_SESSIONS
from connectors.ingress.idempotency_store import PURGE as PURGE_KEYS
from connectors.onec.exchange import PURGE as PURGE_MESSAGES
from mmstream.settings import Settings
from mmstream.trace.retention import PURGE_INTEGRATION_LOG, PURGE_OPS_AUDIT, PURGE_OUTBOX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purged:
    """What one run deleted, and how long it took."""

    keys: int
    messages: int
    seconds: float
    sessions: int = 0
    integration_log: int = 0
    outbox: int = 0
    ops_audit: int = 0

    @property
    def total(self) -> int:
        return (
            self.keys
            + self.messages
            + self.sessions
            + self.integration_log
            + self.outbox
            + self.ops_audit
        )


async def _purge_table(
    engine: AsyncEngine, statement: TextClause, params: dict, rows: int, deadline: float
) -> int:
    deleted = 0
    while True:
        async with engine.begin() as conn:
            done = (await conn.execute(statement, {**params, "rows": rows})).rowcount
        deleted += done
        if done < rows or time.monotonic() >= deadline:
            return deleted


async def purge_once(
    engine: AsyncEngine, settings: Settings, *, budget_s: float | None = None
) -> Purged:
    """Delete what has expired, batch after batch, within ``budget_s`` (half the interval)."""
    ing = settings.ingress
    started = time.monotonic()
    deadline = started + (budget_s if budget_s is not None else ing.purge_interval_s / 2)
    keys = await _purge_table(engine, PURGE_KEYS, {}, ing.purge_batch_rows, deadline)
    messages = await _purge_table(
        engine,
        PURGE_MESSAGES,
        {"keep_s": ing.exchange_message_retention_s},
        ing.purge_batch_rows,
        deadline,
    )
    # Sessions are otherwise purged only at the next checkauth: an exchange abandoned at night
    # would keep its uploads until 1С logs in again.
    sessions = await _purge_table(engine, PURGE_SESSIONS, {}, ing.purge_batch_rows, deadline)
    keep = settings.retention
    logged = await _purge_table(
        engine,
        PURGE_INTEGRATION_LOG,
        {"keep_days": keep.integration_log_days},
        ing.purge_batch_rows,
        deadline,
    )
    outbox = await _purge_table(
        engine, PURGE_OUTBOX, {"keep_days": keep.outbox_days}, ing.purge_batch_rows, deadline
    )
    audit = await _purge_table(
        engine, PURGE_OPS_AUDIT, {"keep_days": keep.ops_audit_days}, ing.purge_batch_rows, deadline
    )
    return Purged(keys, messages, time.monotonic() - started, sessions, logged, outbox, audit)


async def run_purge(engine: AsyncEngine, settings: Settings) -> None:
    """Purge every ``ingress.purge_interval_s`` until cancelled; failures are logged and retried
    at the next interval (expired rows are only clutter: requests never depend on them)."""
    while True:
        try:
            done = await purge_once(engine, settings)
            if done.total:
                rate = done.total / max(done.seconds, 1e-6)
                log.info(
                    "purged expired idempotency keys, exchange message numbers, sessions, "
                    "integration log, outbox and audit rows",
                    extra={
                        "keys": done.keys,
                        "messages": done.messages,
                        "sessions": done.sessions,
                        "integration_log": done.integration_log,
                        "outbox": done.outbox,
                        "ops_audit": done.ops_audit,
                        "seconds": round(done.seconds, 3),
                        "rows_per_s": round(rate),
                    },
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — retried at the next interval
            log.warning(
                "purge failed; retried at the next interval",
                extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
            )
        await asyncio.sleep(settings.ingress.purge_interval_s)
