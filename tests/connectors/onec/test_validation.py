"""Source-shaped validation of 1С records, on the real captured OData data."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from pydantic import TypeAdapter

from connectors.onec.objects import lookup
from connectors.onec.validation import (
    OneCDate,
    RecordRejected,
    content_version,
    deletion_record,
    identity,
    validate,
)
from tests.support.stack import FIXTURES

SHIPMENT = lookup("Document_РеализацияТоваровУслуг")
PRICES = lookup("ЦеныНоменклатуры")


def fixture(name: str) -> list[dict]:
    return json.loads((FIXTURES / "onec_odata" / name).read_text("utf-8"))["value"]


def problems(obj, doc) -> dict[str, str]:
    with pytest.raises(RecordRejected) as info:
        validate(obj, doc)
    return {d["field"]: d["problem"] for d in info.value.details}


def shipment(**changes) -> dict:
    doc = copy.deepcopy(fixture("bp30_Document_RealizatsiyaTovarovUslug.json")[0])
    doc.update(changes)
    return doc


def price(**fields) -> dict:
    doc = {
        "Period": "2024-03-01T00:00:00",
        "Номенклатура_Key": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09",
        "ВидЦены_Key": "2528e58f-e921-11ea-8591-000c29b45b09",
        "Цена": 1250.5,
        "DataVersion": "AAAAAQAAAAA=",
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def test_the_real_shipments_are_valid_documents():
    records = fixture("bp30_Document_RealizatsiyaTovarovUslug.json")
    assert len(records) == 2
    for doc in records:
        rec = validate(SHIPMENT, doc)
        assert (rec.key, rec.version, rec.ident) == (
            doc["Ref_Key"],
            doc["DataVersion"],
            {"Ref_Key": doc["Ref_Key"]},
        )
        assert rec.obj.entity == "shipment" and not rec.deleted


def test_the_real_nomenclature_is_a_valid_product_and_catalog_item():
    (doc,) = fixture("bp30_Catalog_Nomenklatura.json")
    assert validate(lookup("Номенклатура"), doc).key == doc["Ref_Key"]
    assert validate(lookup("Склады"), doc).version == doc["DataVersion"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("Date", "2021-12-22T17:22:08+03:00", "without a zone"),
        ("Date", "2021-12-22", "without a zone"),
        ("Date", "2021-02-30T00:00:00", "not a calendar date"),
        ("Date", "0001-01-01T00:00:00", "empty date"),
        ("Posted", "false", "boolean"),
        ("Number", 1, "string"),
        ("Ref_Key", "00000000-0000-0000-0000-000000000000", "empty reference"),
        ("Ref_Key", "8b9660f6", "UUID"),
        ("DataVersion", "", "at least 1"),
    ],
)
def test_document_fields(field, value, problem):
    found = problems(SHIPMENT, shipment(**{field: value}))
    assert list(found) == [field] and problem in found[field]


@pytest.mark.parametrize("missing", ["Ref_Key", "DataVersion", "Number", "Date", "Posted"])
def test_document_required_fields(missing):
    doc = shipment()
    del doc[missing]
    assert missing in problems(SHIPMENT, doc)


def test_tabular_section_lines_need_a_string_line_number():
    doc = shipment()
    doc["Товары"][0]["LineNumber"] = 1
    doc["Товары"].append("not a line")
    last = len(doc["Товары"]) - 1
    assert set(problems(SHIPMENT, doc)) == {"Товары.0.LineNumber", f"Товары.{last}"}


def test_empty_dates_elsewhere_and_unknown_fields_are_fine():
    doc = shipment(ДоверенностьДата="0001-01-01T00:00:00", НовоеПолеКонфигурации={"any": ["thing"]})
    assert validate(SHIPMENT, doc).key == doc["Ref_Key"]
    assert TypeAdapter(OneCDate).validate_python("0001-01-01T00:00:00") is None


def test_catalog_items_need_ref_version_and_description():
    warehouse = lookup("Склады")
    assert set(problems(warehouse, {"Code": "1"})) == {"Ref_Key", "DataVersion", "Description"}
    ok = {
        "Ref_Key": str(uuid.uuid4()),
        "DataVersion": "AAAAAQAAAAA=",
        "Description": "Основной склад",
    }
    assert validate(warehouse, ok).key == ok["Ref_Key"]
    assert set(problems(warehouse, {**ok, "DeletionMark": "false", "Parent_Key": "x"})) == {
        "DeletionMark",
        "Parent_Key",
    }


def test_not_an_object():
    assert problems(SHIPMENT, ["x"]) == {"(record)": "expected a JSON object"}


def test_prices_of_both_configurations_share_a_key():
    new = validate(PRICES, price(Характеристика_Key="00000000-0000-0000-0000-000000000000"))
    old_doc = price(ВидЦены_Key=None, ТипЦен_Key="2528e58f-e921-11ea-8591-000c29b45b09")
    old = validate(PRICES, old_doc)
    assert new.key == old.key
    assert new.key == (
        "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09|00000000-0000-0000-0000-000000000000|"
        "2528e58f-e921-11ea-8591-000c29b45b09|2024-03-01T00:00:00"
    )
    assert old.ident == {
        "Номенклатура_Key": old_doc["Номенклатура_Key"],
        "ТипЦен_Key": old_doc["ТипЦен_Key"],
        "Period": "2024-03-01T00:00:00",
    }
    other_period = validate(PRICES, price(Period="2024-04-01T00:00:00"))
    assert other_period.key != new.key


def test_price_problems():
    assert set(problems(PRICES, price(ВидЦены_Key=None))) == {"ВидЦены_Key"}
    assert set(problems(PRICES, price(DataVersion=None, Цена="12"))) == {"DataVersion", "Цена"}
    assert set(problems(PRICES, price(Period="0001-01-01T00:00:00"))) == {"Period"}
    assert set(
        problems(PRICES, price(Номенклатура_Key="00000000-0000-0000-0000-000000000000"))
    ) == {"Номенклатура_Key"}


def test_deletion_records_need_identity_and_version_only():
    doc = deletion_record({"Ref_Key": "8b9660f6-6332-11ec-ad72-000c29b45b09"}, "AAAACgAAAAA=")
    assert doc == {
        "Ref_Key": "8b9660f6-6332-11ec-ad72-000c29b45b09",
        "DataVersion": "deleted:AAAACgAAAAA=",
        "DeletionMark": True,
        "_deleted": True,
    }
    rec = validate(SHIPMENT, doc)
    assert rec.deleted and rec.version == "deleted:AAAACgAAAAA="
    _, ident = identity(PRICES, price())
    assert validate(PRICES, deletion_record(ident, "h:1")).key == validate(PRICES, price()).key
    assert "Ref_Key" in problems(SHIPMENT, {"DataVersion": "deleted:x", "_deleted": True})


def test_content_version_follows_the_content():
    assert content_version(price()) == content_version(dict(reversed(list(price().items()))))
    assert content_version(price()) != content_version(price(Цена=1300))
    assert len(content_version(price())) <= 64
