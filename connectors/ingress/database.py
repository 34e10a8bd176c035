"""The bridge's PostgreSQL engine: bounded connects, statements and pool waits.

The bridge's tables (idempotency keys, exchange message numbers, event dedupe, CommerceML
sessions) sit on the request path: a stalled PostgreSQL must turn into a quick 503 with
Retry-After, not requests hanging for minutes while every pooled connection waits on it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.db.engine import async_engine
from mmstream.settings import Settings


def connect_args(settings: Settings) -> dict:
    """psycopg connection arguments: connect timeout and a server-side statement timeout."""
    ing = settings.ingress
    return {
        "connect_timeout": ing.db_connect_timeout_s,
        "options": f"-c statement_timeout={int(ing.db_statement_timeout_s * 1000)}",
    }


def bridge_engine(settings: Settings, *, pool_size: int = 5) -> AsyncEngine:
    """The bridge's async engine (psycopg 3), liveness-checked on checkout."""
    return async_engine(
        settings,
        pool_size=pool_size,
        pool_timeout=settings.ingress.db_pool_timeout_s,
        connect_args=connect_args(settings),
    )
