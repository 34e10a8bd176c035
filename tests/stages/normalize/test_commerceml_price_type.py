"""CommerceML price type declarations -> PriceType, so the prices of a pure "exchange with
site" setup find their type; currencies stored as ISO codes."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import pytest

from connectors.commerceml.document import records
from mmstream.models.base import derived_id
from mmstream.models.price import Price
from mmstream.models.price_type import PriceType
from stages.normalize.commerceml_currency import iso_currency
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

LAYOUTS = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"
CTX = Context()
RETAIL = UUID("bd72d8f3-55bc-11d9-848a-00112f43529a")


def _published(name: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with (LAYOUTS / name).open("rb") as stream:
        for record in records(stream):
            out.setdefault(record.topic, []).append(json.loads(record.value()))
    return out


def test_offer_package_price_types_become_the_types_the_prices_name():
    published = _published("cml204_offers.xml")
    found = normalizers()
    types = [
        t
        for v in published["raw.onec.price_type"]
        for t in found["raw.onec.price_type"](v, {}, CTX)
    ]
    prices = [p for v in published["raw.onec.price"] for p in found["raw.onec.price"](v, {}, CTX)]
    assert all(isinstance(t, PriceType) for t in types) and all(
        isinstance(p, Price) for p in prices
    )
    assert {p.price_type_id for p in prices} <= {t.id for t in types}
    retail, wholesale = types
    assert (retail.id, retail.name, retail.currency, retail.includes_vat, retail.source) == (
        RETAIL,
        "Розничная",
        "RUB",
        True,
        "commerceml",
    )
    assert retail.external_ids == {"onec": str(RETAIL)}
    assert (wholesale.name, wholesale.currency, wholesale.includes_vat) == (
        "Оптовая (дилерская)",
        "USD",
        False,
    )
    assert [p.currency for p in prices] == ["RUB", "USD"]


def test_a_named_type_declared_and_seen_with_its_price_is_one_version(commerceml_offer_records):
    found = normalizers()
    (declared,) = found["raw.onec.price_type"](commerceml_offer_records["price_type"][0], {}, CTX)
    with_price = found["raw.onec.price"](commerceml_offer_records["price"][0], {}, CTX)[0]
    assert declared == with_price  # a duplicate downstream, never a competing change
    assert declared.id == derived_id("price_type", "commerceml", "Отпускная цена")
    assert declared.currency == "RUB"


def test_a_classifier_type_with_a_numeric_currency():
    (record,) = _published("cml208_import.xml")["raw.onec.price_type"]
    (ptype,) = normalizers()["raw.onec.price_type"](record, {}, CTX)
    assert (ptype.name, ptype.currency, ptype.includes_vat) == ("Розничная цена", "RUB", None)


@pytest.mark.parametrize(
    "raw, iso",
    [
        ("руб", "RUB"),
        ("руб.", "RUB"),
        ("RUB", "RUB"),
        ("643", "RUB"),
        ("рубль", "RUB"),
        (" Руб ", "RUB"),
        ("USD", "USD"),
        ("$", "USD"),
        ("840", "USD"),
        ("EUR", "EUR"),
        ("€", "EUR"),
        ("978", "EUR"),
        ("тенге", "KZT"),
        ("398", "KZT"),
        ("933", "BYN"),
        ("980", "UAH"),
        ("грн", "UAH"),
        ("gbp", "GBP"),
        ("", ""),
        (None, ""),
    ],
)
def test_currency_spellings_map_to_iso_codes(raw, iso):
    assert iso_currency(raw) == iso


@pytest.mark.parametrize("raw", ["рубли и копейки", "у.е.", "12", "RUBL"])
def test_an_unknown_currency_is_refused_with_the_field(raw):
    with pytest.raises(Unnormalizable, match="currency: unknown currency"):
        iso_currency(raw, "currency")


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"id": ""}, "without Ид"),
        ({"version": ""}, "version"),
        ({"name": ""}, "without Наименование"),
        ({"currency": "у.е."}, "unknown currency"),
        ({"id": "00000000-0000-0000-0000-000000000000"}, "empty GUID"),
    ],
)
def test_records_that_cannot_be_a_price_type_are_refused(changes, reason):
    (record,) = _published("cml208_import.xml")["raw.onec.price_type"]
    with pytest.raises(Unnormalizable, match=reason):
        normalizers()["raw.onec.price_type"]({**record, **changes}, {}, CTX)
