"""Session-wide services for the tests: a broker and a PostgreSQL, started here unless
TEST_KAFKA_BOOTSTRAP / TEST_DATABASE_URL point at existing ones."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg

from devstack.stack.broker import EmbeddedBroker
from devstack.stack.postgres import EmbeddedPostgres
from mmstream.db.migrate import upgrade
from mmstream.serve import free_port
from mmstream.settings import Settings, sqlalchemy_url

TEMPLATE_DB = "mm_test_template"


class Databases:
    """Creates one fresh, migrated database per test by cloning a migrated template.

    With ``prefetch`` the next database is cloned in a background thread while the current
    test runs: a clone costs 0.2-0.9 s of PostgreSQL work (the template is ~9 MB) that
    otherwise sits in every test's setup. Every test still gets a database nobody used."""

    def __init__(self, server_url: str, *, prefetch: bool = False) -> None:
        # server_url: a libpq URL to the maintenance database of the server.
        self.server_url = server_url
        self._template_ready = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="test-db") if prefetch else None
        self._next: Future[str] | None = None

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server_url, autocommit=True)

    def _url(self, name: str) -> str:
        base = self.server_url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def _prepare_template(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        upgrade(sqlalchemy_url(self._url(TEMPLATE_DB)))
        self._template_ready = True

    def _clone(self) -> str:
        name = f"mm_test_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        return name

    def _take_prefetched(self) -> str | None:
        ahead, self._next = self._next, None
        if ahead is None:
            return None
        try:
            return ahead.result()
        except Exception:  # noqa: BLE001 — clone again in this thread, which raises if it must
            return None

    def create(self) -> str:
        """A new migrated database; returns its SQLAlchemy (psycopg 3) URL."""
        if not self._template_ready:
            self._prepare_template()
        name = self._take_prefetched() or self._clone()
        if self._pool is not None:  # one clone at a time: the template takes no second reader
            self._next = self._pool.submit(self._clone)
        return sqlalchemy_url(self._url(name))

    def drop(self, url: str) -> None:
        """Drop a database made by create()."""
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop the database cloned ahead that no test took."""
        name = self._take_prefetched()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if name:
            self.drop(self._url(name))


def _refuse_in_unit_tier(what: str) -> None:
    # `make test-unit` sets TEST_TIER=unit; its child processes inherit it.
    if os.environ.get("TEST_TIER") == "unit":
        raise RuntimeError(
            f"TEST_TIER=unit: the unit tier starts no {what}; this test belongs to the "
            "integration tier (request a service fixture, e.g. settings or db_url, or see "
            "pytest_collection_modifyitems in tests/conftest.py)"
        )


def start_postgres(tmp: Path) -> tuple[str, EmbeddedPostgres | None]:
    """(libpq URL of the maintenance database, the server we started or None)."""
    _refuse_in_unit_tier("PostgreSQL")
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        return given.replace("postgresql+psycopg://", "postgresql://"), None
    # As root the server runs as its own user, which must pass through this folder (ours, made
    # by the tests) to reach its data; a private folder above it makes the server's data move
    # out instead (devstack/stack/pg_access.py).
    tmp.chmod(0o711)
    server = EmbeddedPostgres(tmp / "pgdata", free_port(), durable=False).start()
    return server.url("postgres"), server


def start_broker(tmp: Path) -> tuple[str, EmbeddedBroker | None]:
    """(bootstrap servers, the broker we started or None)."""
    _refuse_in_unit_tier("broker")
    given = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if given:
        return given, None
    broker = EmbeddedBroker(free_port(), log_path=tmp / "broker.log").start()
    return broker.bootstrap, broker


def drop_topics(settings: Settings, timeout_s: float = 20.0) -> int:
    """Delete the topics of one test (its random prefix) from the session's broker.

    The embedded broker keeps every topic in memory and answers full-metadata requests
    with all of them; without this, every client of later tests pays for the topics of
    all earlier ones. Best effort: a test never fails on its cleanup."""
    from mmstream.kafka.admin import admin_client, existing_topics

    prefix = settings.kafka.topic_prefix
    if not prefix:
        return 0
    try:
        admin = admin_client(settings)
        names = [t for t in existing_topics(admin, timeout_s) if t.startswith(prefix)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=timeout_s).values():
                future.result(timeout=timeout_s)
        return len(names)
    except Exception:  # noqa: BLE001 — cleanup only
        return 0
