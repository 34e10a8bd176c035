"""CommerceML product records reach the canonical product through the same parse()."""

from __future__ import annotations

import json

import pytest

from mmstream.errors import InvalidRecord
from stages.normalize.onec_product import parse

BASE = {
    "_source": "commerceml",
    "id": "7d2dcab3-e453-11e6-9483-00155d020201",
    "characteristic_id": None,
    "name": " Astra Linux Special Edition ",
    "code": "42",
    "article": "ALSE-1",
    "description": "ОС",
    "deleted": False,
    "version": "a" * 64,
}


def _parse(**changes):
    return parse(json.dumps({**BASE, **changes}, ensure_ascii=False).encode())


def test_base_product_maps_to_the_canonical_product():
    p = _parse()
    assert str(p.id) == BASE["id"] and p.name == "Astra Linux Special Edition"
    assert (p.code, p.article, p.version, p.deleted) == ("42", "ALSE-1", "a" * 64, False)
    # Описание is the description, not the full name (that is a requisite, below).
    assert (p.full_name, p.barcode) == ("", "")


def test_full_name_is_the_requisite_and_names_lose_the_xml_indentation():
    p = _parse(
        name='Телевизор "JVC"\n\t\t\t\t\t21 дюйм',
        requisites=[
            {"name": "ВидНоменклатуры", "values": ["Товар"]},
            {"name": "Полное наименование", "values": ["Телевизор цветной\n\t\t\tAV-21"]},
        ],
    )
    assert p.name == 'Телевизор "JVC" 21 дюйм'
    assert p.full_name == "Телевизор цветной AV-21"


def test_full_name_as_an_element_when_no_requisite_carries_it():
    assert _parse(full_name="Астра Линукс\n   SE").full_name == "Астра Линукс SE"


@pytest.mark.parametrize(
    "changes",
    [
        {"barcode": "4601234567893"},
        {"barcode": "", "requisites": [{"name": "Штрихкод", "values": ["4601234567893"]}]},
    ],
)
def test_barcode_from_the_element_or_the_requisite(changes):
    assert _parse(**changes).barcode == "4601234567893"


def test_deletion_status_marks_the_product_deleted():
    assert _parse(deleted=True).deleted is True


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"characteristic_id": "c1"}, "characteristics"),
        ({"id": "ORDER_DELIVERY"}, "not a 1С GUID"),
        ({"name": "  "}, "without name"),
        ({"name": "a\x00b"}, "NUL"),
    ],
)
def test_records_the_canonical_model_cannot_hold_are_invalid(changes, reason):
    with pytest.raises(InvalidRecord, match=reason):
        _parse(**changes)
