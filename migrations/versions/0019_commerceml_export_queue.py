"""The CommerceML export queue, filled: one row per exported Ид, revisions, the entity.

The couriers' instant orders and returns go to 1С through ``type=sale&mode=query``
(stages/egress/commerceml_orders.py). A retry or a change of the same document updates its
row (unique ``document_id``) and raises ``revision``; ``mode=success`` acknowledges a row
only at the revision its session sent (``sent_revision``), so a change made between 1С's
query and its success goes again. ``entity`` names what the row exports
(``instant_order``, ``return``): a document 1С later sends back under that Ид is its
answer to it. Rows written before (none in practice: nothing filled the queue) keep a NULL
entity; duplicates of one Ид, if any, keep only the newest.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-07
"""

from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM commerceml_order_export o USING commerceml_order_export n "
        "WHERE o.document_id = n.document_id AND o.id < n.id"
    )
    op.execute("ALTER TABLE commerceml_order_export ADD COLUMN entity text")
    op.execute("ALTER TABLE commerceml_order_export ADD COLUMN revision bigint NOT NULL DEFAULT 1")
    op.execute("ALTER TABLE commerceml_order_export ADD COLUMN sent_revision bigint")
    op.execute("ALTER TABLE commerceml_order_export ADD COLUMN updated_at timestamptz NOT NULL "
               "DEFAULT now()")
    # Rows sent before this migration were sent at revision 1.
    op.execute("UPDATE commerceml_order_export SET sent_revision = 1 WHERE sent_session IS NOT NULL")
    op.execute("CREATE UNIQUE INDEX commerceml_order_export_document "
               "ON commerceml_order_export (document_id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS commerceml_order_export_document")
    for column in ("updated_at", "sent_revision", "revision", "entity"):
        op.execute(f"ALTER TABLE commerceml_order_export DROP COLUMN IF EXISTS {column}")
