"""Ingress cross-cutting: idempotency keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (caller, path, Idempotency-Key): claimed while the request runs (status
    # NULL), then the answer the client got, replayed to a re-sent request until expires_at.
    # In PostgreSQL rather than in memory so that every bridge replica sees every key.
    op.execute(
        """
        CREATE TABLE ingress_idempotency (
            principal    text        NOT NULL,
            path         text        NOT NULL,
            key          text        NOT NULL,
            fingerprint  bytea       NOT NULL,
            claim        uuid        NOT NULL,
            status       smallint,
            headers      jsonb,
            body         bytea,
            created_at   timestamptz NOT NULL DEFAULT now(),
            lease_until  timestamptz NOT NULL,
            expires_at   timestamptz NOT NULL,
            PRIMARY KEY (principal, path, key)
        )
        """
    )
    # The opportunistic purge deletes by expiry.
    op.execute("CREATE INDEX ingress_idempotency_expiry ON ingress_idempotency (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ingress_idempotency")
