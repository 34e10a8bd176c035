"""CommerceML names and dictionaries kept across the files of an exchange.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CommerceML 3.x splits one package over several files (import / offers / prices / rests),
    # each imported by its own request, maybe on another bridge replica: the classifier's
    # property dictionaries, price types and warehouses read from one file are kept here for
    # the later files of the session. Purged with the session (ON DELETE CASCADE).
    op.execute(
        """
        CREATE TABLE commerceml_session_context (
            session_id  bigint      PRIMARY KEY REFERENCES commerceml_session (id) ON DELETE CASCADE,
            context     jsonb       NOT NULL,
            bytes       integer     NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # The last full classifier of each catalog (by classifier Ид), plus the changes sent
    # since: a "changes only" package names values it declared earlier. Bounded in rows
    # and size by the exchange (connectors/commerceml/store.py).
    op.execute(
        """
        CREATE TABLE commerceml_catalog_context (
            catalog_id  text        PRIMARY KEY,
            context     jsonb       NOT NULL,
            bytes       integer     NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE commerceml_catalog_context")
    op.execute("DROP TABLE commerceml_session_context")
