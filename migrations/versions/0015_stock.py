"""Canonical stock table (warehouse × product × characteristic -> quantity, reserve).

The DDL is what ``stages.sink.entity_table.ddl(Stock)`` generates (the helper
scripts/gen_entity_ddl.py uses for 0007), frozen here as text: a migration must create the
same table however the model changes later (tests/stages/sink/test_entity_table.py fails
when the model and the migrated table disagree; change both with a new migration).

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op

revision = "0015"
down_revision = "0010"
branch_labels = None
depends_on = None

STOCK_TABLE = """
CREATE TABLE "stock" (
    "id" uuid PRIMARY KEY,
    "source" text NOT NULL,
    "version" text NOT NULL,
    "source_stamp" timestamptz,
    "deleted" boolean NOT NULL,
    "external_ids" jsonb NOT NULL,
    "warehouse_id" uuid,
    "product_id" uuid,
    "characteristic_id" uuid,
    "quantity" numeric,
    "reserve" numeric,
    "as_of" timestamptz,
    "warehouse_name" text NOT NULL,
    "revision" bigint NOT NULL DEFAULT 1,
    "writers" text[] NOT NULL DEFAULT '{}',
    "event_id" uuid NOT NULL,
    "stored_at" timestamptz NOT NULL DEFAULT now(),
    "changed_at" timestamptz NOT NULL DEFAULT now()
)
"""


def upgrade() -> None:
    op.execute(STOCK_TABLE)
    op.execute('CREATE INDEX "stock_changed" ON "stock" (changed_at)')
    # "What does warehouse W hold" and "where is product P" are the questions asked of it.
    op.execute('CREATE INDEX "stock_warehouse" ON "stock" (warehouse_id)')
    op.execute('CREATE INDEX "stock_product" ON "stock" (product_id, characteristic_id)')


def downgrade() -> None:
    op.execute('DROP TABLE "stock"')
