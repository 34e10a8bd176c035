"""Migration 0022 on the real PostgreSQL: role ``mm_analyst`` reads the ``analytics`` views
(current, non-deleted rows, external ids as columns) and none of the tables; creating the
role is idempotent and, where the migrating user may not create roles, a NOTICE."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.db.migrate import upgrade
from mmstream.models.product import Product
from mmstream.models.warehouse import Warehouse
from mmstream.settings import REPO_ROOT
from stages.sink import entity_store

_PATH = REPO_ROOT / "migrations" / "versions" / "0022_analytics_role.py"
_spec = importlib.util.spec_from_file_location("migration_0022", _PATH)
migration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(migration)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def as_user(url: str, user: str) -> str:
    """``url`` with another user (the test server trusts local connections)."""
    scheme, rest = libpq(url).split("://", 1)
    return (
        f"{scheme}://{user}@{rest.split('@', 1)[1]}" if "@" in rest else f"{scheme}://{user}@{rest}"
    )


@pytest.fixture
def login_role(db_url):
    """Makes login roles for the test and drops them afterwards."""
    made: list[str] = []

    def make(*grants: str) -> str:
        name = f"mm_test_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(libpq(db_url), autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" LOGIN')
            for grant in grants:
                conn.execute(f'GRANT "{grant}" TO "{name}"')
        made.append(name)
        return name

    yield make
    with psycopg.connect(libpq(db_url), autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def _store(db_url: str, warehouses: list[Warehouse], products: list[Product]) -> None:
    async def main():
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                await entity_store.merge(
                    conn,
                    Warehouse,
                    [
                        entity_store.Incoming(w, "t.raw.onec.warehouse", 0, i, {})
                        for i, w in enumerate(warehouses)
                    ],
                )
                await entity_store.merge(
                    conn,
                    Product,
                    [
                        entity_store.Incoming(p, "t.raw.onec.product", 0, i, {})
                        for i, p in enumerate(products)
                    ],
                )
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_analyst_reads_current_rows_of_the_views_and_no_table(db_url, login_role):
    live, gone = uuid.uuid4(), uuid.uuid4()
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    _store(
        db_url,
        [
            Warehouse(
                id=live,
                source="onec",
                version="v1",
                name="Склад №1",
                external_ids={"onec": str(live), "bitrix24": "store:7"},
            ),
            Warehouse(id=gone, source="onec", version="v1", name="Старый склад", deleted=True),
        ],
        [
            Product(
                id=kept, source="onec", version="v1", name="Мойка", external_ids={"onec": str(kept)}
            ),
            Product(id=dropped, source="onec", version="v1", name="Смеситель", deleted=True),
        ],
    )
    with psycopg.connect(libpq(db_url)) as conn:  # the deleted rows are in the tables
        assert conn.execute(
            "SELECT (SELECT count(*) FROM warehouse WHERE deleted), "
            "(SELECT count(*) FROM product WHERE deleted)"
        ).fetchone() == (1, 1)

    alice = login_role(migration.ROLE)
    with psycopg.connect(as_user(db_url, alice)) as conn:
        rows = conn.execute(
            "SELECT id, name, onec_id, bitrix24_id, commerceml_id FROM analytics.warehouse"
        ).fetchall()
        assert rows == [(live, "Склад №1", str(live), "store:7", None)]
        # Products are canonical like the rest: their view flattens the external ids too.
        assert conn.execute("SELECT id, onec_id FROM analytics.product").fetchall() == [
            (kept, str(kept))
        ]
        for entity in migration.ENTITIES:  # every view is there and readable
            conn.execute(f'SELECT * FROM analytics."{entity}" LIMIT 0')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM public.warehouse")
    for table in ("product", "outbox", "return"):
        with (
            psycopg.connect(as_user(db_url, alice)) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(f'SELECT 1 FROM public."{table}"')
    with (
        psycopg.connect(as_user(db_url, alice)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE VIEW analytics.mine AS SELECT 1")  # read-only: no CREATE

    # A login user without the role sees nothing.
    bob = login_role()
    with (
        psycopg.connect(as_user(db_url, bob)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM analytics.warehouse")


def test_the_migration_runs_again_over_an_existing_role(db_url):
    cfg = Config()
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["url"] = db_url
    command.downgrade(cfg, migration.down_revision)
    with psycopg.connect(libpq(db_url)) as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'analytics'").fetchall() == []
        )
        assert conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (migration.ROLE,)
        ).fetchall() == [(1,)]  # the server's, kept
    upgrade(db_url)  # the role exists already: no error, grants made again
    with psycopg.connect(libpq(db_url)) as conn:
        assert conn.execute(
            "SELECT has_table_privilege(%s, 'analytics.price', 'SELECT'), "
            "has_table_privilege(%s, 'public.price', 'SELECT')",
            (migration.ROLE, migration.ROLE),
        ).fetchone() == (True, False)


def test_without_createrole_the_migration_says_so_and_goes_on(db_url, login_role):
    """The role's SQL run by a user who may not create roles: a NOTICE, no error; the grants
    are skipped with a NOTICE too. (A random role name: mm_analyst exists on this server.)"""
    migrator = login_role()
    missing = f"mm_test_analyst_{uuid.uuid4().hex[:8]}"
    notices: list[str] = []
    with psycopg.connect(as_user(db_url, migrator), autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
        conn.execute(migration.role_sql(missing))
        conn.execute(migration.grants_sql(missing))
        assert (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (missing,)).fetchall() == []
        )
    assert any(
        f"role {missing} not created: {migrator} may not CREATE ROLE" in n for n in notices
    ), notices
    assert any(f"role {missing} does not exist" in n for n in notices), notices

    # With the privilege it is created once; running it again changes nothing.
    with psycopg.connect(libpq(db_url), autocommit=True) as conn:
        try:
            conn.execute(migration.role_sql(missing))
            conn.execute(migration.role_sql(missing))
            assert conn.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (missing,)
            ).fetchall() == [(False,)]
        finally:
            conn.execute(f'DROP ROLE IF EXISTS "{missing}"')


def test_views_flatten_external_ids_where_the_table_has_them():
    assert "external_ids ->> 'bitrix24' AS bitrix24_id" in migration.view_sql("counterparty")
    assert "external_ids" not in migration.view_sql("product")
    assert 'public."return"' in migration.view_sql("return")
    assert Path(_PATH).name.startswith(migration.revision)
