"""Counterparty: ownership, conventions, and the Avro round trip of a full version."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from pydantic import ValidationError

from mmstream.models.catalog import entity_models
from mmstream.models.counterparty import Contract, Counterparty

KNOWN = set(entity_models()) | {"product"}


def full() -> Counterparty:
    return Counterparty(
        id=uuid.uuid4(),
        source="onec",
        version="AAAAFQAAAAA=",
        external_ids={"onec": "x"},
        kind="legal_entity",
        code="00-000042",
        name="ООО «Ромашка»",
        inn="7701234567",
        kpp="770101001",
        legal_form="legal_entity",
        partner_id=uuid.uuid4(),
        is_customer=True,
        phones=("+7 495 123-45-67", "+7 495 765-43-21"),
        emails=("zakaz@romashka.ru",),
        contracts=(
            Contract(
                id=uuid.uuid4(),
                number="Д-17",
                signed_on=date(2024, 3, 1),
                organization_id=uuid.uuid4(),
            ),
        ),
    )


def test_registered_and_owned_by_1c():
    assert entity_models()["counterparty"] is Counterparty
    assert Counterparty.OWNER == "onec" and Counterparty.FIELD_OWNERS == {}
    for field in Counterparty.content_fields():
        assert Counterparty.owns("onec", field) and Counterparty.owns("commerceml", field)
        assert not Counterparty.owns("bitrix24", field)


@pytest.mark.parametrize("model", [Counterparty, Contract])
def test_every_field_is_described_and_refs_name_entities(model):
    for name, info in model.model_fields.items():
        assert info.description, name
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "ref" in extra:
            assert extra["ref"] in KNOWN, name


def test_kind_is_one_of_three():
    with pytest.raises(ValidationError):
        Counterparty(id=uuid.uuid4(), source="onec", version="v", kind="customer")


def test_a_full_version_round_trips_through_the_committed_schema(avro_round_trip):
    c = full()
    back = avro_round_trip(c)
    assert back["name"] == "ООО «Ромашка»" and back["phones"] == list(c.phones)
    assert back["contracts"][0]["signed_on"] == date(2024, 3, 1)
    assert str(back["partner_id"]) == str(c.partner_id) and back["is_supplier"] is None


def test_a_deletion_with_identity_only_round_trips(avro_round_trip):
    back = avro_round_trip(Counterparty(id=uuid.uuid4(), source="onec", version="d", deleted=True))
    assert back["kind"] is None and back["deleted"] is True and back["contracts"] == []
