"""The shared 1С document readers: composite references, VAT forms, sections."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_document import kind_entity, ref_to, section, typed_ref, vat

GUID = "8b9660f6-6332-11ec-ad72-000c29b45b09"


def test_composite_value_without_key_suffix_as_real_odata_sends_it(bp30_shipments):
    line = bp30_shipments[0]["Товары"][0]
    # Субконто + Субконто_Type: a catalog no canonical entity maps, kept as the 1С type.
    assert typed_ref(line, "Субконто") == (
        UUID("f402359a-d84c-11ea-8133-0050569f62a1"),
        "Catalog_ПрочиеДоходыИРасходы",
    )
    # ДокументОприходования = "" of type Undefined: no reference.
    assert typed_ref(line, "ДокументОприходования") == (None, None)


def test_composite_type_maps_to_the_canonical_entity_in_both_configurations():
    assert (
        kind_entity("Document_ЗаказКлиента")
        == kind_entity("Document_ЗаказПокупателя")
        == "customer_order"
    )
    assert kind_entity("Catalog_ФизическиеЛица") == "employee"
    assert kind_entity("Document_СчетНаОплатуПокупателю") is None


def test_ref_to_takes_a_plain_key_or_a_composite_of_the_entity():
    assert ref_to({"Склад_Key": GUID}, "warehouse", "Склад") == UUID(GUID)
    typed = {"Склад": GUID, "Склад_Type": "StandardODATA.Catalog_Склады"}
    assert ref_to(typed, "warehouse", "Склад") == UUID(GUID)
    other = {"Склад": GUID, "Склад_Type": "StandardODATA.Catalog_СтруктурныеЕдиницы"}
    assert ref_to(other, "warehouse", "Склад") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"СтавкаНДС": "НДС20"}, ("НДС20", None, Decimal(20))),
        ({"СтавкаНДС": "НДС10_110"}, ("НДС10_110", None, Decimal(10))),
        ({"СтавкаНДС": "НДС0"}, ("НДС0", None, Decimal(0))),
        ({"СтавкаНДС": "БезНДС"}, ("БезНДС", None, None)),
        ({"СтавкаНДС_Key": GUID}, ("", UUID(GUID), None)),
        ({"СтавкаНДС_Key": "00000000-0000-0000-0000-000000000000"}, ("", None, None)),
    ],
)
def test_vat_forms(line, expected):
    assert vat(line) == expected


def test_section_orders_by_the_string_line_number():
    lines = [{"LineNumber": "10"}, {"LineNumber": "2"}, {"LineNumber": "1"}]
    assert [line["LineNumber"] for line in section({"Товары": lines}, "Товары")] == ["1", "2", "10"]


def test_section_refuses_a_non_list():
    with pytest.raises(Unnormalizable, match="Товары: a tabular section must be a list"):
        section({"Товары": "[]"}, "Товары")
