"""CommerceML and 1С fidelity: the product's barcode, and counterparty contracts.

* ``product.barcode``: 1С's exchange with a site sends a barcode per product (``Штрихкод``,
  element or requisite); the canonical product had no place for it. Optional (empty by
  default): rows written before keep working, 1С OData/push records leave it empty.
* ``contract``: 1С ДоговорыКонтрагентов, its own entity naming its counterparty
  (mmstream/models/contract.py). The DDL is what ``stages.sink.entity_table.ddl`` generates,
  frozen here as text (tests/stages/sink/test_entity_table.py compares model and table).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

CONTRACT_TABLE = """
CREATE TABLE "contract" (
    "id" uuid PRIMARY KEY,
    "source" text NOT NULL,
    "version" text NOT NULL,
    "source_stamp" timestamptz,
    "deleted" boolean NOT NULL,
    "external_ids" jsonb NOT NULL,
    "counterparty_id" uuid,
    "code" text NOT NULL,
    "number" text NOT NULL,
    "name" text NOT NULL,
    "signed_on" date,
    "valid_until" date,
    "kind" text NOT NULL,
    "organization_id" uuid,
    "partner_id" uuid,
    "currency_id" uuid,
    "is_folder" boolean NOT NULL,
    "comment" text NOT NULL,
    "revision" bigint NOT NULL DEFAULT 1,
    "writers" text[] NOT NULL DEFAULT '{}',
    "event_id" uuid NOT NULL,
    "stored_at" timestamptz NOT NULL DEFAULT now(),
    "changed_at" timestamptz NOT NULL DEFAULT now()
)
"""


def upgrade() -> None:
    op.execute("ALTER TABLE product ADD COLUMN IF NOT EXISTS barcode text NOT NULL DEFAULT ''")
    op.execute(CONTRACT_TABLE)
    op.execute('CREATE INDEX "contract_changed" ON "contract" (changed_at)')
    # "Which contracts does counterparty C have" is the question asked of it.
    op.execute('CREATE INDEX "contract_counterparty" ON "contract" (counterparty_id)')


def downgrade() -> None:
    op.execute('DROP TABLE "contract"')
    op.execute("ALTER TABLE product DROP COLUMN IF EXISTS barcode")
