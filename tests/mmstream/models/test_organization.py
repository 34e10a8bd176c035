"""Organization: ownership, conventions, Avro round trip."""

from __future__ import annotations

import uuid

from mmstream.models.catalog import entity_models
from mmstream.models.organization import Organization


def test_registered_and_owned_by_1c():
    assert entity_models()["organization"] is Organization and Organization.OWNER == "onec"
    assert not any(Organization.owns("bitrix24", f) for f in Organization.content_fields())
    assert all(info.description for info in Organization.model_fields.values())
    assert Organization.model_fields["head_id"].json_schema_extra == {"ref": "organization"}


def test_round_trip(avro_round_trip):
    o = Organization(
        id=uuid.uuid4(),
        source="onec",
        version="v",
        name="МастерМобайл",
        inn="6671000000",
        ogrn="1026600000000",
        phones=("+7 343 1",),
    )
    back = avro_round_trip(o)
    assert (back["name"], back["inn"], back["ogrn"], back["head_id"]) == (
        "МастерМобайл",
        "6671000000",
        "1026600000000",
        None,
    )
