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
from tests.mmstream.samples import sample

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


def _reference_record(entity: BaseModel) -> dict:
    """avro_record as it was written before its per-model plan: every field through the
    isinstance chain, the quantum computed per value (the behaviour the plan must keep)."""

    def value(v, info):
        if isinstance(v, Decimal):
            scale = (info.json_schema_extra or {}).get("scale", 4) if info else 4
            return v.quantize(Decimal(1).scaleb(-scale))
        if isinstance(v, BaseModel):
            return _reference_record(v)
        if isinstance(v, (tuple, list)):
            return [value(x, None) for x in v]
        if isinstance(v, dict):
            return {k: value(x, None) for k, x in v.items()}
        return v

    return {
        name: value(getattr(entity, name), info) for name, info in type(entity).model_fields.items()
    }


def _encoded(entity: Canonical, record: dict) -> bytes:
    schema = fastavro.parse_schema(json.loads((AVRO / f"{entity.ENTITY}.avsc").read_text("utf-8")))
    envelope = {"event_id": str(uuid.UUID(int=7)), "changed_at": datetime(2026, 1, 1, tzinfo=UTC)}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, {**record, **envelope, "revision": 2})
    return buf.getvalue()


@pytest.mark.parametrize("entity", sorted(entity_models()))
def test_avro_record_writes_the_bytes_of_the_uncached_conversion_for_every_model(entity):
    for n in range(3):  # the plan is built on the first record and reused after
        doc = sample(entity_models()[entity], n)
        record = avro_record(doc)
        assert record == _reference_record(doc)
        assert [type(v) for v in record.values()] == [
            type(v) for v in _reference_record(doc).values()
        ]
        assert _encoded(doc, record) == _encoded(doc, _reference_record(doc))


def test_avro_record_takes_the_general_path_for_subclasses_of_plain_types():
    class Text(str):
        pass

    class Money(Decimal):
        pass

    doc = _Doc.model_construct(
        id=uuid.UUID(int=1),
        source="onec",
        version="v",
        total=Money("1.005"),
        at=datetime(2026, 11, 1, tzinfo=UTC),
        kind=Text("k"),
        lines=[_Line(amount=Decimal("2.345"))],
    )
    record = avro_record(doc)
    assert record == _reference_record(doc)
    assert str(record["total"]) == "1.00" and record["lines"] == [
        {"amount": Decimal("2.34"), "day": None}
    ]
