"""Couriers' reservations of stock (flow 3 instant orders from walking warehouses).

* ``stock.order_reserve`` / ``order_reserve_at``: the middleware's fields of the stock row
  (mmstream/models/stock.py): what instant orders reserved after 1С's balance moment;
* ``stock_reservation``: one row per instant order × warehouse × product (× characteristic),
  written by the reservation action (stages/egress/bitrix24_stock.py). It makes the
  reservation idempotent per order (a repeated deal event changes nothing) and lets the sum
  over orders be recomputed instead of incremented, so two orders of one courier at once
  cannot lose each other's reservation.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


# ``stages.sink.entity_table.ddl(Stock)`` frozen as text, under a new name: the columns go
# before the system columns, where the generated DDL (and tests/stages/sink/
# test_entity_table.py) has them, so the table is rebuilt and its rows copied over rather
# than altered (ADD COLUMN would append them after ``changed_at``).
STOCK_TABLE = """
CREATE TABLE "stock_new" (
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
    "order_reserve" numeric,
    "order_reserve_at" timestamptz,
    "revision" bigint NOT NULL DEFAULT 1,
    "writers" text[] NOT NULL DEFAULT '{}',
    "event_id" uuid NOT NULL,
    "stored_at" timestamptz NOT NULL DEFAULT now(),
    "changed_at" timestamptz NOT NULL DEFAULT now()
)
"""
_KEPT = ('"id", "source", "version", "source_stamp", "deleted", "external_ids", "warehouse_id", '
         '"product_id", "characteristic_id", "quantity", "reserve", "as_of", "warehouse_name", '
         '"revision", "writers", "event_id", "stored_at", "changed_at"')


def upgrade() -> None:
    op.execute(STOCK_TABLE)
    op.execute(f'INSERT INTO "stock_new" ({_KEPT}) SELECT {_KEPT} FROM "stock"')  # noqa: S608
    op.execute('DROP TABLE "stock"')
    op.execute('ALTER TABLE "stock_new" RENAME TO "stock"')
    op.execute('ALTER TABLE "stock" RENAME CONSTRAINT "stock_new_pkey" TO "stock_pkey"')
    op.execute('CREATE INDEX "stock_changed" ON "stock" (changed_at)')
    op.execute('CREATE INDEX "stock_warehouse" ON "stock" (warehouse_id)')
    op.execute('CREATE INDEX "stock_product" ON "stock" (product_id, characteristic_id)')
    op.execute("""
CREATE TABLE stock_reservation (
    order_id uuid NOT NULL,
    stock_id uuid NOT NULL,
    warehouse_id uuid NOT NULL,
    product_id uuid NOT NULL,
    characteristic_id uuid,
    quantity numeric NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (order_id, stock_id)
)""")
    op.execute("CREATE INDEX stock_reservation_stock ON stock_reservation (stock_id, reserved_at)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS stock_reservation")
    op.execute('ALTER TABLE "stock" DROP COLUMN IF EXISTS "order_reserve_at"')
    op.execute('ALTER TABLE "stock" DROP COLUMN IF EXISTS "order_reserve"')
