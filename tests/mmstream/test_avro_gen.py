"""The committed Avro schemas are what the canonical models generate, and they round-trip."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import fastavro
import pytest
from pydantic import BaseModel, ConfigDict, Field

from mmstream.avro_gen import avro_record, schema_for
from mmstream.models.base import Canonical
from mmstream.models.catalog import entity_models
from scripts.gen_avro import render

AVRO = Path(__file__).resolve().parents[2] / "avro"


@pytest.mark.parametrize("entity", sorted(entity_models()))
def test_committed_schema_is_generated_from_the_model(entity):
    path = AVRO / f"{entity}.avsc"
    assert path.exists(), f"missing {path.name}: run make avro"
    assert path.read_text(encoding="utf-8") == render(entity), "stale schema: run make avro"
    fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))


class _Line(BaseModel):
    """A line."""

    model_config = ConfigDict(frozen=True)
    amount: Decimal = Field(description="money", json_schema_extra={"scale": 2})
    day: date | None = Field(None, description="a day")


class _Doc(Canonical):
    """A document of every field kind."""

    ENTITY: ClassVar[str] = "doc"
    total: Decimal = Field(description="total", json_schema_extra={"scale": 2})
    at: datetime = Field(description="instant")
    ref: uuid.UUID | None = Field(None, description="a reference", json_schema_extra={"ref": "doc"})
    lines: tuple[_Line, ...] = Field((), description="lines")
    kind: str = Field("", description="kind")


def test_every_field_kind_round_trips_exactly():
    schema = fastavro.parse_schema(schema_for(_Doc, "doc"))
    doc = _Doc(
        id=uuid.uuid4(),
        source="onec",
        version="v",
        total=Decimal("1234.5"),
        at=datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        ref=uuid.uuid4(),
        lines=(_Line(amount=Decimal("0.1")), _Line(amount=Decimal("7"), day=date(2026, 1, 2))),
        external_ids={"bitrix24": "42"},
    )
    record = {
        **avro_record(doc),
        "event_id": str(uuid.uuid4()),
        "changed_at": doc.at,
        "revision": 3,
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, schema, schema)
    assert back["total"] == Decimal("1234.50") and back["at"] == doc.at
    assert [line["amount"] for line in back["lines"]] == [Decimal("0.10"), Decimal("7.00")]
    assert back["lines"][1]["day"] == date(2026, 1, 2)
    assert str(back["ref"]) == str(doc.ref) and back["external_ids"] == {"bitrix24": "42"}
    assert back["revision"] == 3


def test_unions_other_than_optional_are_refused():
    class _Bad(Canonical):
        ENTITY: ClassVar[str] = "bad"
        value: int | str = Field(description="either")

    with pytest.raises(TypeError, match="only X | None"):
        schema_for(_Bad, "bad")
