"""catalog.product (as raw.bitrix24.product carries it) -> the product as Bitrix24 shows it."""

from __future__ import annotations

import uuid

import pytest

from stages.normalize.bitrix24_product import parse
from stages.normalize.oddities import Unnormalizable


def b24_product(**fields) -> dict:
    """The shape catalog.product.get answers inside ``product`` (camelCase, strings)."""
    return {
        "id": "142",
        "iblockId": "14",
        "name": "Мойка кухонная",
        "xmlId": str(uuid.uuid4()),
        "code": "moyka",
        "active": "Y",
        "previewText": "Мойка кухонная из нержавейки",
        "timestampX": "2026-11-22T10:15:00+03:00",
        **fields,
    }


def test_our_product_is_read_with_its_bitrix24_id():
    value = b24_product()
    product, b24_id = parse(value)
    assert b24_id == "142" and str(product.id) == value["xmlId"]
    assert (product.source, product.version) == ("bitrix24", "2026-11-22T10:15:00+03:00")
    assert (product.name, product.code, product.full_name, product.deleted) == (
        "Мойка кухонная",
        "moyka",
        "Мойка кухонная из нержавейки",
        False,
    )


def test_inactive_is_deleted_and_numbers_as_ints_pass():
    product, b24_id = parse(b24_product(active="N", id=142))
    assert product.deleted and b24_id == "142"


@pytest.mark.parametrize("xml_id", ["", None, "ext-100500", "00000000-0000-0000-0000-000000000000"])
def test_a_product_without_our_guid_is_not_ours(xml_id):
    assert parse(b24_product(xmlId=xml_id)) is None


def test_a_deletion_in_bitrix24_does_not_delete_a_1c_product():
    assert parse({"_deleted": True, "_key": "product:142"}) is None


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("name", "  ", "name"),
        ("timestampX", "", "timestampX"),
        ("id", "", "id"),
        ("active", "maybe", "active"),
    ],
)
def test_broken_records_name_the_field(field, value, reason):
    with pytest.raises(Unnormalizable, match=reason):
        parse(b24_product(**{field: value}))
