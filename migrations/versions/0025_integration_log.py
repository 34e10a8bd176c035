"""Integration log: every outbound call to 1С and Bitrix24; indexes for retention purges.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per HTTP attempt an egress / enrich client made (mmstream/trace/journal.py):
    # what was sent (masked: no webhook code, token or password is ever stored), what came
    # back (an excerpt), how long it took. ``status`` NULL: no answer (timeout, refused
    # connection; ``error`` names it). Kept ``retention.integration_log_days`` (90).
    op.execute(
        """
        CREATE TABLE integration_log (
            id           bigserial        PRIMARY KEY,
            at           timestamptz      NOT NULL DEFAULT now(),
            target       text             NOT NULL,
            operation    text             NOT NULL,
            http_method  text             NOT NULL,
            url          text             NOT NULL,
            event_id     text             NOT NULL DEFAULT '',
            request_id   text             NOT NULL DEFAULT '',
            traceparent  text             NOT NULL DEFAULT '',
            request      text             NOT NULL DEFAULT '',
            status       integer,
            error        text             NOT NULL DEFAULT '',
            response     text             NOT NULL DEFAULT '',
            latency_ms   double precision NOT NULL
        )
        """
    )
    # The purge deletes by age; `mmctl trace` looks rows up by event id and request id.
    op.execute("CREATE INDEX integration_log_at ON integration_log (at)")
    op.execute("CREATE INDEX integration_log_event ON integration_log (event_id) WHERE event_id <> ''")
    op.execute("CREATE INDEX integration_log_request ON integration_log (request_id) "
               "WHERE request_id <> ''")
    # The outbox purge deletes published rows by age; ops_audit by age.
    op.execute("CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL")
    op.execute("CREATE INDEX ops_audit_at ON ops_audit (at)")
    # `mmctl trace` finds an entity's outbox rows by its canonical id.
    op.execute("CREATE INDEX outbox_entity_id ON outbox (entity_id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS outbox_entity_id")
    op.execute("DROP INDEX IF EXISTS ops_audit_at")
    op.execute("DROP INDEX IF EXISTS outbox_published_at")
    op.execute("DROP TABLE IF EXISTS integration_log")
