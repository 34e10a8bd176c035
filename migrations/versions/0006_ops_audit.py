"""Operations audit trail: offset resets, group deletes, DLQ replays.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per operator action that changes the cluster or replays data. Append-only:
    # the answer to "who moved this group's offsets, and from where?" months later.
    op.execute(
        """
        CREATE TABLE ops_audit (
            id       bigserial   PRIMARY KEY,
            at       timestamptz NOT NULL DEFAULT now(),
            actor    text        NOT NULL,
            action   text        NOT NULL,
            target   text        NOT NULL,
            details  jsonb       NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute("CREATE INDEX ops_audit_target_at ON ops_audit (target, at DESC)")
    op.execute("CREATE INDEX ops_audit_action_at ON ops_audit (action, at DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE ops_audit")
