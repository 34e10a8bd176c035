"""CommerceML exchange sessions, uploaded files and orders recorded for export.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per `checkauth`. Only the SHA-256 of the cookie is kept; `expires_at` slides
    # forward on every request of the session.
    op.execute(
        """
        CREATE TABLE commerceml_session (
            id           bigserial   PRIMARY KEY,
            cookie_hash  bytea       NOT NULL UNIQUE,
            principal    text        NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            expires_at   timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX commerceml_session_expiry ON commerceml_session (expires_at)")
    # Uploaded files live in PostgreSQL so that any bridge replica can import what another
    # one received. A file is the concatenation of its chunks (1С sends big files in
    # several requests that must be appended); chunks are rows, so appending never
    # rewrites what is stored. `processed_at`: imported; a new chunk then starts it over.
    op.execute(
        """
        CREATE TABLE commerceml_file (
            session_id    bigint      NOT NULL REFERENCES commerceml_session (id) ON DELETE CASCADE,
            filename      text        NOT NULL,
            size          bigint      NOT NULL DEFAULT 0,
            chunks        integer     NOT NULL DEFAULT 0,
            received_at   timestamptz NOT NULL DEFAULT now(),
            processed_at  timestamptz,
            PRIMARY KEY (session_id, filename)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE commerceml_file_chunk (
            session_id  bigint  NOT NULL,
            filename    text    NOT NULL,
            seq         integer NOT NULL,
            data        bytea   NOT NULL,
            PRIMARY KEY (session_id, filename, seq),
            FOREIGN KEY (session_id, filename)
                REFERENCES commerceml_file (session_id, filename) ON DELETE CASCADE
        )
        """
    )
    # Orders the site side has for 1С (`type=sale&mode=query`), one CommerceML <Документ>
    # element each. `sent_session`/`sent_at`: handed to 1С; `acknowledged_at`: 1С answered
    # `mode=success`. No foreign key to the session: sessions expire, the history stays.
    op.execute(
        """
        CREATE TABLE commerceml_order_export (
            id               bigserial   PRIMARY KEY,
            document_id      text        NOT NULL,
            document         text        NOT NULL,
            created_at       timestamptz NOT NULL DEFAULT now(),
            sent_session     bigint,
            sent_at          timestamptz,
            acknowledged_at  timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX commerceml_order_export_pending ON commerceml_order_export (id) "
        "WHERE acknowledged_at IS NULL"
    )


def downgrade() -> None:
    for table in ("commerceml_order_export", "commerceml_file_chunk", "commerceml_file",
                  "commerceml_session"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
