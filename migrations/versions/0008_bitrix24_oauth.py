"""Bitrix24 OAuth token storage.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The current OAuth token pair per portal. Every refresh rotates BOTH tokens and
    # invalidates the old refresh token, so the pair lives here, shared by all workers: a
    # refresh happens under this row's lock (SELECT ... FOR UPDATE), and a worker whose
    # token was rotated by another one adopts the stored pair instead of refreshing again.
    # `generation` counts rotations (observability: how often tokens were refreshed).
    op.execute(
        """
        CREATE TABLE bitrix24_oauth_token (
            portal           text        PRIMARY KEY,
            access_token     text        NOT NULL,
            refresh_token    text        NOT NULL,
            expires_at       timestamptz,
            client_endpoint  text,
            member_id        text,
            generation       bigint      NOT NULL DEFAULT 1,
            updated_at       timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS bitrix24_oauth_token")
