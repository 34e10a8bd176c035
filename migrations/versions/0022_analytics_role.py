"""Analysts' read-only access: role ``mm_analyst`` and one view per entity in schema ``analytics``.

Each view shows the current, non-deleted objects of one entity table (the tables hold one
row per id, the latest version) with the ids in other systems flattened from the
``external_ids`` jsonb to columns (``onec_id``, ``bitrix24_id``, ``commerceml_id``: the keys
the normalizers write). ``mm_analyst`` (NOLOGIN) gets USAGE on ``analytics`` and SELECT on
its views only, never on the tables: the views read the tables with their owner's rights.
A DBA grants the role to login users (``GRANT mm_analyst TO alice``).

Creating a role needs CREATEROLE, which the migrating user may not have (a managed
PostgreSQL, a least-privilege deploy user). The migration then does not fail: it says so in
a NOTICE, still creates the schema and the views, and skips the grants; a DBA creates the
role and grants what ``GRANTS`` lists (docs/analytics/README.md). Re-running is harmless.

The views name every column of their table (``t.*`` is expanded when a view is created):
a later migration that adds a column recreates the view to show it (``CREATE OR REPLACE
VIEW`` with :func:`view_sql`'s text), and one that drops or retypes a column drops the view
first (PostgreSQL refuses otherwise).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

ROLE = "mm_analyst"
SCHEMA = "analytics"
# The entity tables at this revision (0001 product, 0007 most, 0015 stock, 0016 contract).
ENTITIES = ("advance_report", "cash_expense", "cash_receipt", "contract", "counterparty",
            "customer_order", "delivery_task", "employee", "instant_order", "organization",
            "price", "price_type", "product", "return", "shipment", "stock", "warehouse")
# product predates external_ids (1С's Ref_Key is its id).
WITHOUT_EXTERNAL_IDS = frozenset({"product"})
# external_ids keys the normalizers write -> the view's column.
EXTERNAL_ID_COLUMNS = (("onec", "onec_id"), ("bitrix24", "bitrix24_id"),
                       ("commerceml", "commerceml_id"))


def role_sql(role: str = ROLE) -> str:
    """Create ``role`` NOLOGIN unless it exists; without the privilege, a NOTICE instead."""
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        RETURN;
    END IF;
    BEGIN
        CREATE ROLE "{role}" NOLOGIN;
    EXCEPTION
        WHEN insufficient_privilege THEN
            RAISE NOTICE 'role {role} not created: % may not CREATE ROLE. A DBA runs '
                         'CREATE ROLE {role} NOLOGIN and the grants of migration 0022 '
                         '(see docs/analytics/README.md)', current_user;
        WHEN duplicate_object THEN
            NULL;  -- created meanwhile by a concurrent migration of another database
    END;
END
$$"""  # noqa: S608 — names are this module's constants, not input


def view_sql(entity: str, schema: str = SCHEMA) -> str:
    """The view of one entity table: current, non-deleted rows, external ids as columns."""
    flat = "" if entity in WITHOUT_EXTERNAL_IDS else "".join(
        f",\n       t.external_ids ->> '{key}' AS {column}" for key, column in EXTERNAL_ID_COLUMNS)
    return (f'CREATE OR REPLACE VIEW {schema}."{entity}" AS\n'
            f"SELECT t.*{flat}\n"
            f'FROM public."{entity}" AS t\n'
            "WHERE NOT t.deleted")


def grants_sql(role: str = ROLE, schema: str = SCHEMA) -> str:
    """USAGE on the schema and SELECT on its views, when ``role`` exists."""
    views = ", ".join(f'{schema}."{e}"' for e in ENTITIES)
    return f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        RAISE NOTICE 'role {role} does not exist: no grants on schema {schema}';
        RETURN;
    END IF;
    GRANT USAGE ON SCHEMA {schema} TO "{role}";
    GRANT SELECT ON {views} TO "{role}";
END
$$"""  # noqa: S608 — names are this module's constants, not input


def upgrade() -> None:
    op.execute(role_sql())
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for entity in ENTITIES:
        op.execute(view_sql(entity))
    op.execute(grants_sql())


def downgrade() -> None:
    # The role stays: roles belong to the whole server, and other databases may grant it.
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
