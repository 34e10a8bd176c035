"""Foundation: products, seen versions, outbox, id crosswalk, egress deliveries, schema registry.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Canonical products. 1C is the source of truth; the canonical id is the 1C Ref_Key.
    op.execute(
        """
        CREATE TABLE product (
            id            uuid PRIMARY KEY,
            source        text        NOT NULL,
            version       text        NOT NULL,
            code          text        NOT NULL DEFAULT '',
            name          text        NOT NULL,
            full_name     text        NOT NULL DEFAULT '',
            article       text        NOT NULL DEFAULT '',
            parent_id     uuid,
            unit_id       uuid,
            is_folder     boolean     NOT NULL DEFAULT false,
            is_service    boolean     NOT NULL DEFAULT false,
            deleted       boolean     NOT NULL DEFAULT false,
            event_id      uuid        NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Every (entity, source id, version) ever accepted. 1C DataVersion is opaque, so "older"
    # can only mean "seen before": a replayed old version is recognized here and skipped.
    op.execute(
        """
        CREATE TABLE source_version (
            entity     text        NOT NULL,
            source_id  text        NOT NULL,
            version    text        NOT NULL,
            seen_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (entity, source_id, version)
        )
        """
    )
    # Transactional outbox: written with the entity row, published by the worker that owns
    # the source partition, to the same partition downstream.
    op.execute(
        """
        CREATE TABLE outbox (
            id                bigserial PRIMARY KEY,
            event_id          uuid        NOT NULL UNIQUE,
            entity            text        NOT NULL,
            entity_id         text        NOT NULL,
            change            text        NOT NULL CHECK (change IN ('upsert', 'delete')),
            version           text        NOT NULL,
            source_topic      text        NOT NULL,
            source_partition  integer     NOT NULL,
            source_offset     bigint      NOT NULL,
            payload           jsonb       NOT NULL,
            headers           jsonb       NOT NULL DEFAULT '{}'::jsonb,
            created_at        timestamptz NOT NULL DEFAULT now(),
            published_at      timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX outbox_pending ON outbox (source_topic, source_partition, id) "
        "WHERE published_at IS NULL"
    )
    # One id crosswalk: canonical id <-> id in another system.
    op.execute(
        """
        CREATE TABLE crosswalk (
            system        text        NOT NULL,
            entity        text        NOT NULL,
            canonical_id  text        NOT NULL,
            external_id   text        NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (system, entity, canonical_id),
            UNIQUE (system, entity, external_id)
        )
        """
    )
    # What egress last delivered per entity: replays of delivered events change nothing.
    op.execute(
        """
        CREATE TABLE egress_delivery (
            target         text        NOT NULL,
            entity         text        NOT NULL,
            entity_id      text        NOT NULL,
            last_outbox_id bigint      NOT NULL,
            last_event_id  uuid        NOT NULL,
            external_id    text,
            delivered_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (target, entity, entity_id)
        )
        """
    )
    # Confluent-compatible schema registry storage (the embedded stack serves the API).
    op.execute(
        """
        CREATE TABLE registry_schema (
            id           serial PRIMARY KEY,
            schema_type  text   NOT NULL DEFAULT 'AVRO',
            canonical    text   NOT NULL,
            fingerprint  text   NOT NULL UNIQUE
        )
        """
    )
    op.execute(
        """
        CREATE TABLE registry_subject_version (
            subject     text        NOT NULL,
            version     integer     NOT NULL,
            schema_id   integer     NOT NULL REFERENCES registry_schema (id),
            deleted     boolean     NOT NULL DEFAULT false,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (subject, version),
            UNIQUE (subject, schema_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE registry_config (
            subject        text PRIMARY KEY,
            compatibility  text NOT NULL
        )
        """
    )


def downgrade() -> None:
    for table in ("registry_config", "registry_subject_version", "registry_schema",
                  "egress_delivery", "crosswalk", "outbox", "source_version", "product"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
