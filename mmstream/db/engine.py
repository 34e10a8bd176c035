"""Database engines: one async engine per process, built from the settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mmstream.settings import Settings


def async_engine(settings: Settings, *, pool_size: int = 5, **options: object) -> AsyncEngine:
    """An async SQLAlchemy engine (psycopg 3) with liveness checks on checkout; ``options``
    go to ``create_async_engine`` (pool_timeout, connect_args…)."""
    return create_async_engine(
        settings.require_database_url(),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        **options,
    )
