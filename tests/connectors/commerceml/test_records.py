"""Entries -> records: keys, characteristics, deletions, prices, stock, orders, versions."""

from __future__ import annotations

import io
import json

import pytest

from connectors.commerceml.document import check, records
from connectors.commerceml.errors import DocumentRejected
from tests.connectors.commerceml import samples


def _records(data: bytes):
    return list(records(io.BytesIO(data)))


def _doc(body: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация ВерсияСхемы='2.05'>"
        + body
        + "</КоммерческаяИнформация>"
    ).encode()


def test_products_keyed_by_the_product_part_with_the_characteristic_as_a_field():
    out = _records(samples.catalog())
    ids = samples.offer_ids()
    assert [r.entity for r in out] == ["product"] * len(ids)
    assert [r.key for r in out] == [i.split("#")[0] for i in ids]
    assert [r.payload["characteristic_id"] for r in out] == [
        i.split("#")[1] if "#" in i else None for i in ids
    ]
    assert all(
        r.payload["_source"] == "commerceml" and r.payload["cml_id"] == i for r, i in zip(out, ids)
    )


def test_product_fields_resolved_through_the_classifier():
    first = _records(samples.catalog())[1].payload
    assert first["name"].startswith("Windows 10 Education Lic (KW5-00336")
    assert first["unit"] == {"code": "796", "name": "шт", "full_name": "штука", "international": ""}
    assert first["groups"] == [{"id": "4080da7e-ab7d-11e4-944a-00155d020201", "name": "Microsoft"}]
    license_type = next(p for p in first["properties"] if p["id"] == "LICENSE_TYPE")
    assert license_type == {
        "id": "LICENSE_TYPE",
        "name": "Тип лицензии",
        "type": "Справочник",
        "values": ["MAINTANCE"],
        "labels": ["поддержка"],
        "value_ids": ["MAINTANCE"],
    }


def test_deletions_are_records_with_deleted_true():
    out = _records(samples.catalog())
    deleted = [r.payload["cml_id"] for r in out if r.payload["deleted"]]
    assert deleted == samples.deleted_offer_ids() and len(deleted) == 6


@pytest.mark.parametrize(
    "marker", ["<Статус>Удален</Статус>", "<ПометкаУдаления>true</ПометкаУдаления>"]
)
def test_deletion_markers(marker):
    (rec,) = _records(
        _doc(f"<Каталог><Товары><Товар><Ид>p1</Ид>{marker}</Товар></Товары></Каталог>")
    )
    assert rec.payload["deleted"] is True and rec.payload["name"] == ""


def test_deletion_as_attribute():
    (rec,) = _records(
        _doc("<Каталог><Товары><Товар Статус='Удален'><Ид>p1</Ид></Товар></Товары></Каталог>")
    )
    assert rec.payload["deleted"] is True


def test_a_live_product_needs_a_name():
    with pytest.raises(DocumentRejected, match="no <Наименование>"):
        check(io.BytesIO(_doc("<Каталог><Товары><Товар><Ид>p1</Ид></Товар></Товары></Каталог>")))


def test_prices_one_per_offer_and_price_type():
    out = [r for r in _records(samples.OFFERS.read_bytes()) if r.entity == "price"]
    priced = samples.priced_offer_ids()
    assert [r.key for r in out] == [f"{i}:{samples.PRICE_TYPE}" for i in priced]
    first = out[0].payload
    assert {
        k: first[k]
        for k in (
            "product_id",
            "characteristic_id",
            "price_type_id",
            "price_type_name",
            "price",
            "currency",
            "unit",
            "ratio",
        )
    } == {
        "product_id": "235ccc6d-ab81-11e4-944a-00155d020201",
        "characteristic_id": "a5abd77f-93f6-11e5-9468-00155d020201",
        "price_type_id": "Отпускная цена",
        "price_type_name": "Отпускная цена",
        "price": "2042.66",
        "currency": "руб",
        "unit": "шт",
        "ratio": "1",
    }
    assert sorted(r.payload["offer_id"] for r in out if r.payload["deleted"]) == sorted(
        samples.deleted_offer_ids()
    )


def test_stock_total_and_per_warehouse():
    out = [r for r in _records(samples.offers_with_stock()) if r.entity == "stock"]
    priced = samples.priced_offer_ids()
    assert [r.key for r in out] == [k for i in priced for k in (i, f"{i}:{samples.WAREHOUSE}")]
    total, store = out[2].payload, out[3].payload
    assert (total["warehouse_id"], total["quantity"]) == (None, "1")
    assert (store["warehouse_id"], store["warehouse_name"], store["quantity"]) == (
        samples.WAREHOUSE,
        "Основной склад",
        "1.5",
    )


def test_stock_in_the_rests_shape():
    body = (
        "<ПакетПредложений><Предложения><Предложение><Ид>p1#c1</Ид><Остатки>"
        "<Остаток><Количество>7</Количество></Остаток>"
        "<Остаток><Склад><Ид>w1</Ид><Количество>3</Количество></Склад></Остаток>"
        "</Остатки></Предложение></Предложения></ПакетПредложений>"
    )
    out = _records(_doc(body))
    assert [(r.key, r.payload["quantity"]) for r in out] == [("p1#c1", "7"), ("p1#c1:w1", "3")]


def test_stock_warehouse_as_child_elements():
    body = (
        "<ПакетПредложений><Предложения><Предложение><Ид>p1</Ид><Склад><ИдСклада>w2</ИдСклада>"
        "<КоличествоНаСкладе>4</КоличествоНаСкладе></Склад></Предложение></Предложения></ПакетПредложений>"
    )
    assert [(r.key, r.payload["quantity"]) for r in _records(_doc(body))] == [("p1:w2", "4")]


def test_orders():
    out = _records(samples.ORDERS.read_bytes())
    assert [(r.entity, r.key) for r in out] == [("customer_order", k) for k in ("36", "92", "93")]
    first = out[0].payload
    assert (first["number"], first["date"], first["amount"], first["currency"]) == (
        "36",
        "2007-10-30",
        "6734.47",
        "руб",
    )
    assert [(i["product_id"], i["price"], i["quantity"]) for i in first["items"]] == [
        ("ORDER_DELIVERY", "340.00", "1.00"),
        ("dee6e19a-55bc-11d9-848a-00112f43529a", "6394.47", "1.00"),
    ]
    assert first["counterparties"][0]["role"] == "Покупатель"
    assert {"name": "Статус заказа", "values": ["[N] Принят"]} in first["requisites"]
    assert out[1].payload["deleted"] is False


def test_version_is_the_content_hash():
    a = _records(samples.OFFERS.read_bytes())
    b = _records(samples.OFFERS.read_bytes())
    assert [r.version for r in a] == [r.version for r in b]
    assert len({r.version for r in a}) == len(a)
    changed = samples.OFFERS.read_bytes().replace(b"2042.66", b"2042.67")
    c = _records(changed)
    # Record 0 is the declared price type; the first price (record 1) is the one changed.
    assert [i for i, (x, y) in enumerate(zip(a, c)) if x.version != y.version] == [1]
    assert json.loads(a[1].value())["version"] == a[1].version
