"""The live path re-reads the rows its own merge wrote without the bounds walk (their values
passed it at normalization); the types are still converted and anything else refused."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from pydantic import ValidationError

from mmstream.avro_gen import avro_record
from mmstream.models.bounds import OutOfBounds
from mmstream.models.price_type import PriceType
from stages.outbox.relay import _trusted


def payload(markup: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "source": "onec",
        "version": "v1",
        "name": "Розничная",
        "deleted": False,
        "external_ids": {},
        "markup_percent": Decimal(markup),
    }


def test_the_trusted_read_converts_types_and_gives_the_same_avro_record():
    row = payload("5.5")
    trusted = _trusted(PriceType).model_validate(row)
    checked = PriceType.model_validate(row)
    assert isinstance(trusted.id, uuid.UUID) and trusted.markup_percent == Decimal("5.5")
    assert avro_record(trusted) == avro_record(checked)
    assert _trusted(PriceType) is _trusted(PriceType)  # built once per model
    assert _trusted(PriceType).ENTITY == PriceType.ENTITY


def test_only_the_bounds_walk_is_skipped():
    out_of_bounds = payload("1e30")
    with pytest.raises(OutOfBounds):
        PriceType.model_validate(out_of_bounds)
    assert _trusted(PriceType).model_validate(out_of_bounds).markup_percent == Decimal("1e30")
    with pytest.raises(ValidationError):
        _trusted(PriceType).model_validate({**payload("1"), "markup_percent": "много"})
