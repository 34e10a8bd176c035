"""The product's property values (CommerceML ``ЗначенияСвойств``).

1С's exchange with a site sends each product's properties, declared in the
``Классификатор/Свойства`` (dictionary values resolved to their text by the bridge). The
canonical product had no place for them (mmstream/models/product.py ``properties``). A jsonb
list of ``{"id", "name", "value", "value_id"}``, empty by default: rows written before keep
working, 1С OData/push records leave it empty.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE product ADD COLUMN IF NOT EXISTS properties jsonb NOT NULL DEFAULT '[]'")


def downgrade() -> None:
    op.execute("ALTER TABLE product DROP COLUMN IF EXISTS properties")
