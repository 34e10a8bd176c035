"""Cash SLA deviations raised (flow 4): one row per cash document that missed its posting SLA.

Written by whoever raises the deviation first — the posting (stages/egress/cash.py, a
document posted late or refused by 1С) or the periodic watch (stages/egress/cash_sla.py,
a document still unposted past its SLA: waiting behind egress lag, parked, dead-lettered or
simply not posted). The primary key makes a deviation count once per document and kind,
across restarts and worker instances; ``event`` keeps what was raised so an event whose
publication a crash interrupted (``published_at`` still null) is published again, with the
same CloudEvent id.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

KINDS = ("cash_receipt", "cash_expense", "advance_report")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE cash_sla_deviation (
            entity        text        NOT NULL,
            document_id   text        NOT NULL,
            outcome       text        NOT NULL,
            raised_by     text        NOT NULL CHECK (raised_by IN ('posting', 'watch')),
            event         jsonb       NOT NULL,
            raised_at     timestamptz NOT NULL DEFAULT now(),
            published_at  timestamptz,
            PRIMARY KEY (entity, document_id)
        )
        """
    )
    op.execute("CREATE INDEX cash_sla_deviation_unpublished ON cash_sla_deviation (raised_at) "
               "WHERE published_at IS NULL")
    # The watch looks at the unposted documents by date every minute: a small partial index
    # instead of a scan of every cash document ever pushed.
    for table in KINDS:
        op.execute(f'CREATE INDEX "{table}_unposted_date" ON "{table}" (date) '
                   "WHERE NOT posted AND NOT deleted")


def downgrade() -> None:
    for table in KINDS:
        op.execute(f'DROP INDEX "{table}_unposted_date"')
    op.execute("DROP TABLE cash_sla_deviation")
