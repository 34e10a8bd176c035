"""Egress leases: one writer per entity without holding a database connection.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A delivery in flight holds its entity's lease (stages/egress/delivery.py). A lease
    # held by a worker that died ends at expires_at; a live one is deleted when done.
    op.execute(
        """
        CREATE TABLE egress_lease (
            target      text        NOT NULL,
            entity      text        NOT NULL,
            entity_id   text        NOT NULL,
            holder      uuid        NOT NULL,
            expires_at  timestamptz NOT NULL,
            PRIMARY KEY (target, entity, entity_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE egress_lease")
