"""CommerceML as stock 1С writes it, in the documented layouts (tests/fixtures/commerceml,
one file per version) and the real captures: what the reader must not lose."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from connectors.commerceml.document import check, records
from connectors.commerceml.errors import DocumentRejected
from tests.connectors.commerceml import samples

LAYOUTS = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"


def _records(name: str):
    with (LAYOUTS / name).open("rb") as stream:
        return list(records(stream))


def _doc(body: str, version: str = "3.1") -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация ВерсияСхемы='{version}'>"
        + body
        + "</КоммерческаяИнформация>"
    ).encode()


def test_3x_orders_inside_containers_are_read():
    out = _records("cml3_orders.xml")
    assert [(r.entity, r.key) for r in out] == [
        ("customer_order", "d1c0a8e2-6f7a-11eb-8105-00155d000c01"),
        ("customer_order", "d1c0a8e4-6f7a-11eb-8105-00155d000c01"),
    ]
    first = out[0].payload
    assert (first["number"], first["currency"], first["comment"]) == (
        "00000000101",
        "RUB",
        "Оставить у двери",
    )
    assert first["items"][0]["quantity"] == "2"
    with (LAYOUTS / "cml3_orders.xml").open("rb") as stream:
        assert check(stream).entries == {"order": 2}


def test_both_layouts_in_one_file_and_a_bad_contained_document_refuses_the_file():
    both = _doc(
        "<Документ><Ид>A</Ид><Дата>2021-01-01</Дата></Документ>"
        "<Контейнер><Документ><Ид>B</Ид><Дата>2021-01-01</Дата></Документ></Контейнер>"
    )
    assert [r.key for r in records(io.BytesIO(both))] == ["A", "B"]
    broken = _doc("<Контейнер><Документ><Номер>1</Номер></Документ></Контейнер>")
    with pytest.raises(DocumentRejected, match="without <Ид>"):
        check(io.BytesIO(broken))


def test_price_types_of_the_offer_package_are_published():
    out = _records("cml204_offers.xml")
    types = [r for r in out if r.entity == "price_type"]
    assert [r.key for r in types] == [
        "bd72d8f3-55bc-11d9-848a-00112f43529a",
        "bd72d8f4-55bc-11d9-848a-00112f43529a",
    ]
    assert all(r.topic == "raw.onec.price_type" for r in types)
    retail = types[0].payload
    assert (retail["_source"], retail["name"], retail["currency"]) == (
        "commerceml",
        "Розничная",
        "руб",
    )
    assert retail["tax"] == {"name": "НДС", "included": "true", "excise": None}
    assert len(retail["version"]) == 64
    # Declared before the offers, so they come first: the prices find their types.
    assert [r.entity for r in out][:2] == ["price_type", "price_type"]
    assert {r.entity for r in out[2:]} == {"price", "stock"}


def test_price_types_declared_in_the_classifier_208_are_published():
    out = _records("cml208_import.xml")
    assert [(r.entity, r.key) for r in out] == [
        ("price_type", "5f8b2a11-7f1e-11e6-80d3-00155d000a01"),
        ("product", "5f8b2a20-7f1e-11e6-80d3-00155d000a01"),
    ]


def test_the_real_ut_offers_publish_their_named_price_type():
    out = list(records(io.BytesIO(samples.OFFERS.read_bytes())))
    types = [r for r in out if r.entity == "price_type"]
    assert [r.key for r in types] == [samples.PRICE_TYPE]
    assert types[0].payload["currency"] == "руб"


def test_a_price_type_without_an_id_refuses_the_file():
    bad = _doc(
        "<ПакетПредложений><ТипыЦен><ТипЦены><Наименование>Розничная</Наименование>"
        "</ТипЦены></ТипыЦен></ПакетПредложений>",
        "2.04",
    )
    with pytest.raises(DocumentRejected, match="price type"):
        check(io.BytesIO(bad))


def test_product_requisites_and_barcode_reach_the_record():
    (product,) = _records("cml207_import.xml")
    payload = product.payload
    assert payload["barcode"] == "4601234567893"
    assert {
        "name": "Полное наименование",
        "values": ['Телевизор цветной "JVC" AV-21,\n\t\t\t\t\t\t\tдиагональ 21 дюйм'],
    } in payload["requisites"]
    assert payload["properties"][0]["labels"] == ["JVC"]


def test_documents_in_an_unknown_wrapper_refuse_the_file_rather_than_vanish():
    odd = _doc(
        "<Документ><Ид>A</Ид></Документ><Документы><Документ><Ид>B</Ид></Документ></Документы>"
    )
    with pytest.raises(DocumentRejected, match="КоммерческаяИнформация/Документы/Документ"):
        check(io.BytesIO(odd))
