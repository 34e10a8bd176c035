"""Egress parking: the delayed, sequenced retry path of every egress target.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A change that keeps failing transiently leaves its partition and waits here; later
    # changes of the same entity park behind it (in id order) so the entity's order holds
    # while other entities flow. The original record is kept whole for the DLQ.
    op.execute(
        """
        CREATE TABLE egress_parked (
            id               bigserial   PRIMARY KEY,
            target           text        NOT NULL,
            entity           text        NOT NULL,
            entity_id        text        NOT NULL,
            source_topic     text        NOT NULL,
            source_partition integer     NOT NULL,
            source_offset    bigint      NOT NULL,
            record_key       bytea,
            record_value     bytea,
            record_headers   jsonb       NOT NULL DEFAULT '[]'::jsonb,
            attempts         integer     NOT NULL DEFAULT 0,
            first_failure    timestamptz,
            last_failure     timestamptz,
            last_error       text,
            error_code       text,
            next_attempt_at  timestamptz NOT NULL DEFAULT now(),
            parked_at        timestamptz NOT NULL DEFAULT now(),
            UNIQUE (target, source_topic, source_partition, source_offset)
        )
        """
    )
    op.execute("CREATE INDEX egress_parked_entity ON egress_parked (target, entity, entity_id, id)")
    op.execute("CREATE INDEX egress_parked_due ON egress_parked (target, next_attempt_at)")


def downgrade() -> None:
    op.execute("DROP TABLE egress_parked")
