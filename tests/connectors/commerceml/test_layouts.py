"""Every CommerceML layout 1С writes, 2.04 to 3.1, through the bridge's reader and the
normalizers (pure): the documents of tests/fixtures/commerceml, one oddity per test.

Products go through stages.normalize.commerceml_product, prices and stock through the
CommerceML paths of onec_price and onec_stock, price types through commerceml_price_type —
what the sinks store."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from connectors.commerceml.document import check, records
from mmstream.errors import InvalidRecord
from mmstream.models.price import Price
from mmstream.models.price_type import PriceType
from mmstream.models.product import Product, ProductProperty
from mmstream.models.stock import Stock
from mmstream.models.warehouse import Warehouse
from stages.normalize import commerceml_product, onec_price, onec_stock
from stages.normalize.commerceml_price_type import to_price_type

LAYOUTS = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"


def _read(name: str):
    data = (LAYOUTS / name).read_bytes()
    out = list(records(io.BytesIO(data)))
    # The record a topic carries is its JSON: normalize what a consumer reads back.
    return [(r.entity, r.key, json.loads(r.value())) for r in out]


def _of(out, entity: str):
    return [payload for kind, _, payload in out if kind == entity]


def _canonical(out):
    """Every record of a document as the normalizers turn it into canonical entities."""
    made = []
    for entity, _, payload in out:
        if entity == "product":
            made.append(commerceml_product.to_product(payload))
        elif entity == "price":
            made.extend(onec_price.from_commerceml(payload))
        elif entity == "stock":
            made.extend(onec_stock.from_commerceml(payload))
        elif entity == "price_type":
            made.append(to_price_type(payload))
    return made


# -- 2.04: windows-1251, nested groups, properties with a dictionary ------------------------


def test_204_windows_1251_catalog_with_nested_groups_and_dictionary_properties():
    raw = (LAYOUTS / "cml204_import_1251.xml").read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="windows-1251"?>')
    assert "Чайник".encode("cp1251") in raw  # really 1251 bytes, not UTF-8
    out = _read("cml204_import_1251.xml")
    (doc,) = _of(out, "product")
    assert doc["name"] == "Чайник электрический «Заря»"
    assert doc["article"] == "ЧЭ-1700"
    # A nested group (Группа/Группы/Группа) is known by its name.
    assert doc["groups"] == [{"id": "3c2a6c12-7411-11e2-8b7a-0019db6b1a01", "name": "Чайники"}]
    (product,) = _canonical(out)
    assert isinstance(product, Product)
    assert product.properties == (
        ProductProperty(
            id="3c2a6c20-7411-11e2-8b7a-0019db6b1a01",
            name="Цвет",
            value="Красный",
            value_id="3c2a6c21-7411-11e2-8b7a-0019db6b1a01",
        ),
        ProductProperty(
            id="3c2a6c23-7411-11e2-8b7a-0019db6b1a01",
            name="Мощность, Вт",
            value="2000",
            value_id="",
        ),
    )


def test_nested_groups_know_their_parent():
    from connectors.commerceml.parser import Context, entries

    ctx = Context()
    list(entries((LAYOUTS / "cml204_import_1251.xml").open("rb"), ctx))
    assert ctx.group_parents == {
        "3c2a6c12-7411-11e2-8b7a-0019db6b1a01": "3c2a6c11-7411-11e2-8b7a-0019db6b1a01"
    }
    assert ctx.groups["3c2a6c11-7411-11e2-8b7a-0019db6b1a01"] == "Бытовая техника"


# -- 2.04 / 2.05 offers: price types of the package, characteristics, warehouses ------------


def test_204_offers_prices_reach_a_price_in_rubles():
    out = _read("cml204_offers.xml")
    made = _canonical(out)
    types = [m for m in made if isinstance(m, PriceType)]
    prices = [m for m in made if isinstance(m, Price)]
    assert {t.name for t in types} == {"Розничная", "Оптовая (дилерская)"}
    assert prices and all(p.price_type_id in {t.id for t in types} for p in prices)
    assert {p.currency for p in prices} <= {"RUB", "USD"}


def test_205_offer_of_a_characteristic_splits_its_id_and_carries_stock_per_warehouse():
    out = _read("cml205_offers.xml")
    (price,) = _of(out, "price")
    assert (price["product_id"], price["characteristic_id"]) == (
        "3c2a6c30-7411-11e2-8b7a-0019db6b1a01",
        "3c2a6c31-7411-11e2-8b7a-0019db6b1a01",
    )
    made = _canonical(out)
    (canonical_price,) = [m for m in made if isinstance(m, Price)]
    assert canonical_price.characteristic_id == UUID("3c2a6c31-7411-11e2-8b7a-0019db6b1a01")
    assert (canonical_price.price, canonical_price.currency) == (Decimal("1290"), "RUB")
    stock = sorted(
        (m for m in made if isinstance(m, Stock)), key=lambda s: s.warehouse_id is not None
    )
    # The total (Количество) and the warehouse's own quantity (Склад attributes).
    assert [(s.warehouse_id, s.quantity) for s in stock] == [
        (None, Decimal("7")),
        (UUID("3c2a6c50-7411-11e2-8b7a-0019db6b1a01"), Decimal("7")),
    ]
    assert all(s.characteristic_id == UUID("3c2a6c31-7411-11e2-8b7a-0019db6b1a01") for s in stock)


def test_a_product_of_a_characteristic_is_refused_visibly_not_merged_into_its_product():
    doc = (
        "<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация ВерсияСхемы='2.05'>"
        "<Каталог><Товары><Товар><Ид>3c2a6c30-7411-11e2-8b7a-0019db6b1a01#3c2a6c31-7411-11e2-"
        "8b7a-0019db6b1a01</Ид><Наименование>Чайник (красный)</Наименование>"
        "<ХарактеристикиТовара><ХарактеристикаТовара><Наименование>Цвет</Наименование>"
        "<Значение>красный</Значение></ХарактеристикаТовара></ХарактеристикиТовара>"
        "</Товар></Товары></Каталог></КоммерческаяИнформация>"
    ).encode()
    (rec,) = records(io.BytesIO(doc))
    payload = json.loads(rec.value())
    assert rec.key == "3c2a6c30-7411-11e2-8b7a-0019db6b1a01"
    assert payload["characteristics"] == [{"name": "Цвет", "value": "красный"}]
    with pytest.raises(InvalidRecord, match="characteristic"):
        commerceml_product.to_product(payload)


# -- 2.07 / 2.08 ----------------------------------------------------------------------------


def test_207_catalog_properties_resolve_through_the_classifier():
    (product,) = [m for m in _canonical(_read("cml207_import.xml")) if isinstance(m, Product)]
    assert product.properties, "the 2.07 product's ЗначенияСвойств"
    assert all(p.id and p.value and p.name for p in product.properties)


def test_208_price_types_of_the_classifier_become_price_types():
    made = _canonical(_read("cml208_import.xml"))
    (ptype,) = [m for m in made if isinstance(m, PriceType)]
    assert (ptype.id, ptype.name) == (
        UUID("5f8b2a11-7f1e-11e6-80d3-00155d000a01"),
        "Розничная цена",
    )


# -- 2.09 / УТ 10.2 with the Bitrix module: ТипыЗначений/ТипЗначений/ВариантЗначения ---------


def test_209_dictionary_in_the_ut102_shape_resolves_its_values():
    (product,) = _canonical(_read("cml209_import.xml"))
    assert [(p.name, p.value, p.value_id) for p in product.properties] == [
        ("Производитель", "Pentax", "65fa6244-c8af-11e1-a928-4061868fc6eb"),
        # ВариантыЗначений without a declared type: still a dictionary of ids.
        ("Сезон", "Зимний", "b79b0fe1-c8a5-11e1-a928-4061868fc6eb"),
    ]


# -- 2.10: changes only ---------------------------------------------------------------------


def test_210_changes_only_catalog_keeps_unresolved_dictionary_values_as_ids():
    out = _read("cml210_import_changes.xml")
    chair, table = _canonical(out)
    assert chair.properties == (
        ProductProperty(
            id="7b4e2f10-ff10-11e9-80e5-00155d010b01",
            name="Цвет",
            value="Чёрный",
            value_id="7b4e2f11-ff10-11e9-80e5-00155d010b01",
        ),
        # Declared as a dictionary, its entry not in this (changes only) classifier: the id
        # is kept, no GUID is passed off as the text.
        ProductProperty(
            id="7b4e2f10-ff10-11e9-80e5-00155d010b01",
            name="Цвет",
            value="",
            value_id="7b4e2f12-ff10-11e9-80e5-00155d010b01",
        ),
        # A string value pretty-printed over lines is one line.
        ProductProperty(
            id="7b4e2f20-ff10-11e9-80e5-00155d010b01",
            name="Материал",
            value="Бук, массив",
            value_id="",
        ),
    )
    # A deleted product in a changes-only catalog is a deletion, not a product without name.
    assert (table.name, table.deleted) == ("Стол обеденный", True)


def test_210_changes_package_of_offers_is_read_like_a_full_package():
    out = _read("cml210_offer_changes.xml")
    assert [kind for kind, _, _ in out] == ["price_type", "price", "stock"]
    made = _canonical(out)
    (price,) = [m for m in made if isinstance(m, Price)]
    assert (price.price, price.currency) == (Decimal("1499.90"), "RUB")
    (stock,) = [m for m in made if isinstance(m, Stock)]
    assert (stock.warehouse_id, stock.quantity) == (None, Decimal("12"))
    with (LAYOUTS / "cml210_offer_changes.xml").open("rb") as stream:
        assert check(stream).entries["offer"] == 1


# -- 3.1: import, offers, prices and rests in separate files --------------------------------


def test_3x_import_declares_price_types_and_warehouses_in_the_classifier():
    out = _read("cml3_import.xml")
    made = _canonical(out)
    (ptype,) = [m for m in made if isinstance(m, PriceType)]
    assert (ptype.id, ptype.name, ptype.currency) == (
        UUID("e5b1f820-7b4a-11eb-8112-00155d000d01"),
        "Розничная",
        "RUB",
    )
    (product,) = [m for m in made if isinstance(m, Product)]
    assert (product.name, product.full_name, product.article) == (
        "Футболка хлопковая",
        "Футболка хлопковая с круглым вырезом",
        "TS-01",
    )
    assert product.properties == (
        ProductProperty(
            id="e5b1f810-7b4a-11eb-8112-00155d000d01",
            name="Бренд",
            value="Северный ветер",
            value_id="e5b1f811-7b4a-11eb-8112-00155d000d01",
        ),
    )


def test_3x_offers_file_without_prices_gives_nothing_to_store():
    out = _read("cml3_offers.xml")
    assert out == []  # offers without Цены or stock: descriptions of variants only
    with (LAYOUTS / "cml3_offers.xml").open("rb") as stream:
        assert check(stream).entries == {"offer": 1}


def test_3x_prices_file_alone_gives_prices_of_the_classifier_types():
    out = _read("cml3_prices.xml")
    assert [kind for kind, _, _ in out] == ["price", "price"]
    # The types are declared in the import file, not here: the prices name them by Ид only.
    assert all(p["price_type_name"] is None for p in _of(out, "price"))
    made = _canonical(out)
    assert all(isinstance(m, Price) for m in made)  # a GUID type is not re-declared per price
    assert sorted((str(p.characteristic_id), p.price) for p in made) == [
        ("None", Decimal("790")),
        ("e5b1f841-7b4a-11eb-8112-00155d000d01", Decimal("850.00")),
    ]
    assert {p.price_type_id for p in made} == {UUID("e5b1f820-7b4a-11eb-8112-00155d000d01")}


def test_3x_rests_file_per_warehouse_and_total_only():
    out = _read("cml3_rests.xml")
    made = _canonical(out)
    stock = [m for m in made if isinstance(m, Stock)]
    assert sorted((str(s.characteristic_id), str(s.warehouse_id), s.quantity) for s in stock) == [
        ("None", "e5b1f830-7b4a-11eb-8112-00155d000d01", Decimal("14")),
        ("e5b1f841-7b4a-11eb-8112-00155d000d01", "None", Decimal("3")),
    ]
    # The warehouse is declared in the import file: none is re-described from here.
    assert not [m for m in made if isinstance(m, Warehouse)]


def test_a_guid_value_of_a_property_the_document_does_not_declare_is_an_unresolved_id():
    # 3.x may send the classifier in a file of its own: the catalog's property is unknown.
    doc = (
        "<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация ВерсияСхемы='3.1'>"
        "<Каталог><Товары><Товар><Ид>e5b1f840-7b4a-11eb-8112-00155d000d01</Ид>"
        "<Наименование>Футболка</Наименование><ЗначенияСвойств>"
        "<ЗначенияСвойства><Ид>e5b1f810-7b4a-11eb-8112-00155d000d01</Ид>"
        "<Значение>e5b1f811-7b4a-11eb-8112-00155d000d01</Значение></ЗначенияСвойства>"
        "<ЗначенияСвойства><Ид>MATERIAL</Ид><Значение>хлопок</Значение></ЗначенияСвойства>"
        "</ЗначенияСвойств></Товар></Товары></Каталог></КоммерческаяИнформация>"
    ).encode()
    (product,) = _canonical(
        [(r.entity, r.key, json.loads(r.value())) for r in records(io.BytesIO(doc))]
    )
    assert product.properties == (
        ProductProperty(
            id="e5b1f810-7b4a-11eb-8112-00155d000d01",
            value="",
            value_id="e5b1f811-7b4a-11eb-8112-00155d000d01",
        ),
        ProductProperty(id="MATERIAL", value="хлопок"),
    )


@pytest.mark.parametrize("name", sorted(p.name for p in LAYOUTS.glob("*.xml")))
def test_every_layout_passes_the_document_check_and_names_its_schema_version(name):
    with (LAYOUTS / name).open("rb") as stream:
        summary = check(stream)
    assert sum(summary.entries.values()) > 0, summary  # something was read
    head = (LAYOUTS / name).read_bytes()[:400]
    assert "ВерсияСхемы".encode("cp1251" if b"windows-1251" in head else "utf-8") in head
