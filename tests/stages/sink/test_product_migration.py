"""Migration 0024 on real PostgreSQL: the products the dedicated product sink stored become
canonical rows the entity sink continues from — content kept, ``external_ids`` from the
crosswalk, bookkeeping columns filled, every current version "seen" — and it goes back."""

from __future__ import annotations

import uuid

import psycopg
from alembic import command
from alembic.config import Config

from mmstream.settings import REPO_ROOT

V1 = "AAAAAQAAAAA="


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def alembic(db_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["url"] = db_url
    return cfg


def test_legacy_products_are_backfilled_as_canonical_rows_and_the_migration_goes_back(db_url):
    cfg = alembic(db_url)
    command.downgrade(cfg, "0023")
    linked, plain, event = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(libpq(db_url), autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO product (id, source, version, code, name, full_name, article, parent_id,
                                 unit_id, is_folder, is_service, deleted, event_id, created_at,
                                 updated_at, barcode, properties)
            VALUES (%s, 'onec', %s, '00-1', 'Мойка', 'Мойка кухонная', 'M-1', NULL, NULL, false,
                    false, false, %s, '2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z',
                    '4601234567893', '[{"id": "c0", "name": "Цвет", "value": "Красный", "value_id": ""}]'),
                   (%s, 'onec', %s, '', 'Смеситель', '', '', NULL, NULL, false, false, true, %s,
                    now(), now(), '', '[]')
        """,
            (linked, V1, event, plain, V1, uuid.uuid4()),
        )
        conn.execute(
            "INSERT INTO crosswalk (system, entity, canonical_id, external_id) "
            "VALUES ('bitrix24', 'product', %s, '42')",
            (str(linked),),
        )
        # The product sink remembered this version; the other one is missing (a restore).
        conn.execute(
            "INSERT INTO source_version (entity, source_id, version) VALUES ('product', %s, %s)",
            (str(linked), V1),
        )

    command.upgrade(cfg, "0024")
    with psycopg.connect(libpq(db_url)) as conn:
        rows = conn.execute(
            "SELECT id, source, version, source_stamp, deleted, external_ids, code, name, "
            "full_name, article, barcode, properties, revision, writers, event_id, stored_at, "
            "changed_at FROM product ORDER BY name"
        ).fetchall()
        seen = conn.execute(
            "SELECT source_id FROM source_version WHERE entity = 'product' ORDER BY source_id"
        ).fetchall()
        view = conn.execute("SELECT id, onec_id, bitrix24_id FROM analytics.product").fetchall()
    first = rows[0]
    assert first[:12] == (
        linked,
        "onec",
        V1,
        None,
        False,
        {"onec": str(linked), "bitrix24": "42"},
        "00-1",
        "Мойка",
        "Мойка кухонная",
        "M-1",
        "4601234567893",
        [{"id": "c0", "name": "Цвет", "value": "Красный", "value_id": ""}],
    )
    assert first[12:15] == (1, ["onec"], event)
    assert (first[15].isoformat(), first[16].isoformat()) == (
        "2026-01-01T00:00:00+00:00",
        "2026-02-01T00:00:00+00:00",
    )
    assert rows[1][4:6] == (True, {"onec": str(plain)})
    assert sorted(seen) == sorted([(str(linked),), (str(plain),)])
    assert view == [(linked, str(linked), "42")]  # the deleted one is not in the view

    command.downgrade(cfg, "0023")
    with psycopg.connect(libpq(db_url)) as conn:
        back = conn.execute(
            "SELECT id, version, name, barcode, deleted FROM product ORDER BY name"
        ).fetchall()
    assert back == [
        (linked, V1, "Мойка", "4601234567893", False),
        (plain, V1, "Смеситель", "", True),
    ]
    command.upgrade(cfg, "head")
