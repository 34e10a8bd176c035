"""Employee: ownership, conventions, Avro round trip."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from pydantic import ValidationError

from mmstream.models.catalog import entity_models
from mmstream.models.employee import Employee


def test_registered_and_owned_by_1c():
    assert entity_models()["employee"] is Employee and Employee.OWNER == "onec"
    assert not any(Employee.owns("bitrix24", f) for f in Employee.content_fields())
    assert all(info.description for info in Employee.model_fields.values())
    assert Employee.model_fields["person_id"].json_schema_extra == {"ref": "employee"}


def test_kind_is_user_person_or_employee():
    with pytest.raises(ValidationError):
        Employee(id=uuid.uuid4(), source="onec", version="v", kind="courier")


def test_round_trip(avro_round_trip):
    e = Employee(
        id=uuid.uuid4(),
        source="onec",
        version="v",
        kind="person",
        name="Иванов И.И.",
        birth_date=date(1990, 2, 28),
        phones=("+7 900 000-00-01",),
    )
    back = avro_round_trip(e)
    assert (back["kind"], back["birth_date"], back["is_active"]) == (
        "person",
        date(1990, 2, 28),
        None,
    )
