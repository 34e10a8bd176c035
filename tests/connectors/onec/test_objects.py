"""The 1С object catalogue: names of both configurations and OData forms -> entity and topic."""

from __future__ import annotations

import unicodedata

import pytest

from connectors.onec.objects import OBJECTS, UT11, UT103, accepted_names, entities, lookup
from mmstream.settings import Settings
from mmstream.topics import load_catalog

# (УТ 11 name, УТ 10.3 name): the same entity under two names.
RENAMED = [
    ("ЗаказКлиента", "ЗаказПокупателя"),
    ("ВидыЦен", "ТипыЦенНоменклатуры"),
    ("ВозвратТоваровОтКлиента", "ВозвратТоваровОтПокупателя"),
]


def test_every_object_goes_to_a_declared_raw_topic():
    catalog = load_catalog(Settings(_env_file=None).topics_file)
    for obj in OBJECTS:
        spec = catalog[obj.topic]
        assert spec.role == "raw" and spec.entity == obj.entity, obj


def test_every_flow_entity_has_an_object():
    assert entities() == sorted(
        [
            "product",
            "counterparty",
            "contract",
            "warehouse",
            "organization",
            "price_type",
            "price",
            "employee",
            "customer_order",
            "shipment",
            "return",
            "cash_receipt",
            "cash_expense",
            "advance_report",
            "stock",
        ]
    )


@pytest.mark.parametrize(("ut11", "ut103"), RENAMED)
def test_both_configurations_name_the_same_entity(ut11, ut103):
    new, old = lookup(ut11), lookup(ut103)
    assert new.entity == old.entity and new.topic == old.topic
    assert UT11 in new.configurations and UT103 in old.configurations


@pytest.mark.parametrize(
    ("name", "entity"),
    [
        ("Номенклатура", "product"),
        ("Catalog_Номенклатура", "product"),
        ("products", "product"),
        ("Контрагенты", "counterparty"),
        ("Партнеры", "counterparty"),
        ("Склады", "warehouse"),
        ("Организации", "organization"),
        ("ЦеныНоменклатуры", "price"),
        ("InformationRegister_ЦеныНоменклатуры", "price"),
        ("InformationRegister_ЦеныНоменклатуры_RecordType", "price"),
        ("Пользователи", "employee"),
        ("ФизическиеЛица", "employee"),
        ("Сотрудники", "employee"),
        ("Document_ЗаказКлиента", "customer_order"),
        ("РеализацияТоваровУслуг", "shipment"),
        ("ПриходныйКассовыйОрдер", "cash_receipt"),
        ("РасходныйКассовыйОрдер", "cash_expense"),
        ("АвансовыйОтчет", "advance_report"),
    ],
)
def test_lookup(name, entity):
    assert lookup(name).entity == entity


def test_lookup_is_forgiving_about_case_and_unicode_form():
    decomposed = unicodedata.normalize(
        "NFD", "ВидыЦен"
    )  # й and ё arrive decomposed from some clients
    assert lookup("catalog_номенклатура").name == "Номенклатура"
    assert (
        lookup(unicodedata.normalize("NFD", "Document_ЗаказПокупателя")).name == "ЗаказПокупателя"
    )
    assert lookup(decomposed).name == "ВидыЦен"


@pytest.mark.parametrize(
    "name", ["Nomenklatura", "Catalog_ЗаказКлиента", "Document_Номенклатура", "", "batch"]
)
def test_unknown_names(name):
    assert lookup(name) is None


def test_odata_names_and_accepted_names():
    assert lookup("Номенклатура").odata_name == "Catalog_Номенклатура"
    assert lookup("ЗаказКлиента").odata_name == "Document_ЗаказКлиента"
    assert lookup("ЦеныНоменклатуры").odata_name == "InformationRegister_ЦеныНоменклатуры"
    names = accepted_names()
    assert all(lookup(n) is not None for n in names)
    assert {"Номенклатура", "Catalog_Номенклатура", "ЗаказПокупателя", "products"} <= set(names)
    assert lookup("ЗаказКлиента").event_type == "ru.mastermobile.onec.customer_order.v1"
