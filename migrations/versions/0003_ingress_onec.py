"""1C push exchange messages, OData cursors and key sets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Exchange-plan messages received by the bridge. 1С re-sends a message until it is
    # acknowledged; a re-send is answered from `response` and publishes nothing. `object` is
    # in the key because one exchange message may arrive as one post per 1С object;
    # `principal` (the token subject) because two bases may use the same node codes.
    # `body_sha256` tells a true re-send from a different message under a reused number.
    op.execute(
        """
        CREATE TABLE onec_exchange_message (
            principal    text        NOT NULL,
            node         text        NOT NULL,
            message_no   bigint      NOT NULL,
            object       text        NOT NULL,
            body_sha256  text        NOT NULL,
            response     jsonb       NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (principal, node, message_no, object)
        )
        """
    )
    op.execute("CREATE INDEX onec_exchange_message_received ON onec_exchange_message (received_at)")
    # One row per polled OData entity set: where the current full scan stands, so a
    # restarted poller resumes it, and when deletions were last reconciled.
    op.execute(
        """
        CREATE TABLE onec_odata_cursor (
            entity_set         text        PRIMARY KEY,
            scan_id            bigint      NOT NULL DEFAULT 0,
            scan_skip          bigint      NOT NULL DEFAULT 0,
            scan_in_progress   boolean     NOT NULL DEFAULT false,
            scan_started_at    timestamptz,
            scan_completed_at  timestamptz,
            reconciled_at      timestamptz,
            updated_at         timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Every record the poller has read: DataVersion is opaque and catalogs have no change
    # timestamp, so "changed" means "version differs from the one last published", and
    # "deleted" means "not seen in a complete scan" (last_seen_scan behind the cursor).
    op.execute(
        """
        CREATE TABLE onec_odata_seen (
            entity_set         text        NOT NULL,
            record_key         text        NOT NULL,
            ident              jsonb       NOT NULL,
            data_version       text        NOT NULL,
            published_version  text,
            last_seen_scan     bigint      NOT NULL,
            updated_at         timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (entity_set, record_key)
        )
        """
    )
    op.execute("CREATE INDEX onec_odata_seen_scan ON onec_odata_seen (entity_set, last_seen_scan)")


def downgrade() -> None:
    for table in ("onec_odata_seen", "onec_odata_cursor", "onec_exchange_message"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
