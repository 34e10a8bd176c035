"""Helpers of the model tests: an entity through its committed Avro schema and back."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest
from pydantic import BaseModel

from mmstream.avro_gen import avro_record

AVRO = Path(__file__).resolve().parents[3] / "avro"


@pytest.fixture
def avro_round_trip() -> Callable[[BaseModel], dict]:
    """Write a canonical entity with its committed ``avro/<entity>.avsc``, read it back."""

    def round_trip(entity: BaseModel) -> dict:
        text = (AVRO / f"{type(entity).ENTITY}.avsc").read_text(encoding="utf-8")
        schema = fastavro.parse_schema(json.loads(text))
        record = {
            **avro_record(entity),
            "event_id": str(uuid.uuid4()),
            "changed_at": datetime(2026, 1, 1, tzinfo=UTC),
            "revision": 1,
        }
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        buf.seek(0)
        return fastavro.schemaless_reader(buf, schema, schema)

    return round_trip
