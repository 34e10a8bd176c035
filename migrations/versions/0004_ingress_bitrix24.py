"""Bitrix24 event dedupe, published entity versions and poll cursors.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The bridge's near-duplicate filter: Bitrix24 sends one change as several events ~2 s
    # apart. One row per (portal, entity key, event kind); an event is dropped while the one
    # that passed is younger than the window AND not fetched yet (fetched_at, set by the
    # enrichment before it calls the portal). An optimisation only: see event_dedupe.py.
    op.execute(
        """
        CREATE TABLE bitrix24_event_seen (
            member_id   text        NOT NULL,
            entity_key  text        NOT NULL,
            kind        text        NOT NULL,
            seen_at     timestamptz NOT NULL DEFAULT now(),
            fetched_at  timestamptz,
            PRIMARY KEY (member_id, entity_key, kind)
        )
        """
    )
    # The last entity version the enrichment published to raw.bitrix24.<entity>, per key. A
    # change seen by both an event and the poller is fetched twice but published once. The
    # digest of the fetched body tells apart two changes within one second (versions are
    # second-resolution timestamps); a tombstone is version 'deleted'. Only the LAST one
    # counts, so an entity restored from the recycle bin is published again.
    op.execute(
        """
        CREATE TABLE bitrix24_published (
            entity_key    text        PRIMARY KEY,
            version       text        NOT NULL,
            digest        text        NOT NULL,
            published_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # The fallback poller's cursor per portal and entity: the highest modification time
    # listed, and the ids already listed at exactly that time (times have one-second
    # resolution, so that second is listed again for late arrivals).
    op.execute(
        """
        CREATE TABLE bitrix24_poll_cursor (
            portal      text        NOT NULL,
            entity      text        NOT NULL,
            since       text        NOT NULL,
            seen_ids    text[]      NOT NULL DEFAULT '{}',
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (portal, entity)
        )
        """
    )


def downgrade() -> None:
    for table in ("bitrix24_poll_cursor", "bitrix24_published", "bitrix24_event_seen"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
