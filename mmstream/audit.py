"""The operations audit trail (table ``ops_audit``): who changed what, when, before and after.

Every operator action that moves offsets, deletes a group or replays records writes one
row here *after* it succeeded, with ``details`` holding at least ``before`` and ``after``.
Both async (workers, FastAPI) and sync (the ``mmctl`` command line) callers are served;
either may pass an engine (a short transaction of its own) or a connection (the caller's
transaction, so the audit row commits or rolls back with the work it describes).
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mmstream.settings import Settings, get_settings

_INSERT = text(
    "INSERT INTO ops_audit (actor, action, target, details) "
    "VALUES (:actor, :action, :target, CAST(:details AS jsonb)) RETURNING id"
)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit trail."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


def actor(settings: Settings | None = None) -> str:
    """Who is acting: ``MM_OPS__ACTOR`` when set, else the OS user running the command."""
    configured = (settings or get_settings()).ops.actor
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container user without a passwd entry still has a uid.
        return f"uid:{os.getuid()}"


def _params(
    who: str, action: str, target: str, details: Mapping[str, Any] | None
) -> dict[str, Any]:
    # default=str: offsets maps keyed by tuples are the caller's job, but datetimes and
    # UUIDs inside details should not make an already-applied action unauditable.
    return {
        "actor": who,
        "action": action,
        "target": target,
        "details": json.dumps(dict(details or {}), default=str, ensure_ascii=False),
    }


async def record(
    engine_or_conn: AsyncEngine | AsyncConnection,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one audit row; returns its id.

    With an ``AsyncConnection`` the row joins the caller's transaction (the caller commits);
    with an ``AsyncEngine`` it is committed at once.
    """
    params = _params(actor, action, target, details)
    if isinstance(engine_or_conn, AsyncConnection):
        return (await engine_or_conn.execute(_INSERT, params)).scalar_one()
    async with engine_or_conn.begin() as conn:
        return (await conn.execute(_INSERT, params)).scalar_one()


def record_sync(
    engine_or_conn: Engine | Connection,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """The synchronous twin of :func:`record`, for the command line."""
    params = _params(actor, action, target, details)
    if isinstance(engine_or_conn, Connection):
        return engine_or_conn.execute(_INSERT, params).scalar_one()
    with engine_or_conn.begin() as conn:
        return conn.execute(_INSERT, params).scalar_one()


def recent_sync(
    engine: Engine, *, target: str | None = None, action: str | None = None, limit: int = 50
) -> list[AuditEntry]:
    """The newest audit rows first, optionally only for one target and/or action."""
    sql = (
        "SELECT id, at, actor, action, target, details FROM ops_audit "
        "WHERE (CAST(:target AS text) IS NULL OR target = :target) "
        "AND (CAST(:action AS text) IS NULL OR action = :action) "
        "ORDER BY id DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"target": target, "action": action, "limit": limit})
        return [AuditEntry(*row) for row in rows]
