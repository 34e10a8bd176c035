"""Every canonical model has a migrated table with the columns the generic sink writes."""

from __future__ import annotations

import psycopg
import pytest

from mmstream.models.catalog import entity_models
from stages.sink.entity_table import SYSTEM_COLUMNS, columns

_PG_NAMES = {
    "timestamptz": "timestamp with time zone",
    "bigint": "bigint",
    "text": "text",
    "uuid": "uuid",
    "numeric": "numeric",
    "boolean": "boolean",
    "jsonb": "jsonb",
    "date": "date",
    "double precision": "double precision",
    "text[]": "ARRAY",
}


@pytest.mark.parametrize("entity", sorted(entity_models()))
def test_table_matches_model(db_url, entity):
    with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as conn:
        found = conn.execute(
            "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (entity,),
        ).fetchall()
    expected = [
        (c.name, _PG_NAMES[c.pg_type], c.nullable) for c in columns(entity_models()[entity])
    ]
    expected += [
        (name, _PG_NAMES[spec.split(" NOT NULL")[0]], False) for name, spec in SYSTEM_COLUMNS
    ]
    assert found == expected, "regenerate: python scripts/gen_entity_ddl.py --write"
