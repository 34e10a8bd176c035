"""The names carried from one file of an exchange to the next (connectors/commerceml/context.py)
and what the parser tells about a document (its classifier, "changes only"). Pure."""

from __future__ import annotations

import io
import json
from pathlib import Path

from connectors.commerceml import context as names
from connectors.commerceml.document import check, records
from connectors.commerceml.parser import Context, PriceType, Property, entries

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"
CATALOG = "e5b1f800-7b4a-11eb-8112-00155d000d01"
PRODUCT = "e5b1f840-7b4a-11eb-8112-00155d000d01"
VARIANT = f"{PRODUCT}#e5b1f841-7b4a-11eb-8112-00155d000d01"
RETAIL = "e5b1f820-7b4a-11eb-8112-00155d000d01"
STORE = "e5b1f830-7b4a-11eb-8112-00155d000d01"


def _file(name: str) -> io.BytesIO:
    return io.BytesIO((FIXTURES / name).read_bytes())


def _declared(name: str) -> Context:
    ctx = Context()
    for _ in entries(_file(name), ctx):
        pass
    return ctx


def _payloads(name: str, ctx: Context | None = None) -> dict[str, dict]:
    return {r.key: r.payload for r in records(_file(name), ctx)}


def test_merge_overlays_names_and_unites_a_propertys_dictionary():
    base = Context(
        properties={"p": Property("Цвет", {"v1": "Красный", "v2": "Синий"}, "Справочник")},
        price_types={"t": PriceType("Розничная", "643")},
        warehouses={"w": "Старый"},
        groups={"g": "Одежда"},
    )
    top = Context(
        properties={"p": Property("", {"v2": "Голубой", "v3": "Зелёный"}, "")},
        price_types={"t": PriceType("Розница", "RUB")},
        warehouses={"w2": "Новый"},
    )
    merged = names.merge(base, top)
    assert merged.properties["p"] == Property(
        "Цвет", {"v1": "Красный", "v2": "Голубой", "v3": "Зелёный"}, "Справочник"
    )
    assert merged.price_types == {"t": PriceType("Розница", "RUB")}
    assert merged.warehouses == {"w": "Старый", "w2": "Новый"}
    assert merged.groups == {"g": "Одежда"}
    # Neither input changed (a stored context is never edited in place).
    assert base.properties["p"].values == {"v1": "Красный", "v2": "Синий"}
    assert top.warehouses == {"w2": "Новый"}


def test_the_names_survive_json_and_nothing_of_the_file_itself_travels():
    ctx = _declared("cml3_import.xml")
    assert (ctx.classifier_id, ctx.full_classifier) == (CATALOG, True)
    back = names.from_json(json.loads(names.dump(ctx)))
    assert (
        back.properties,
        back.price_types,
        back.warehouses,
        back.groups,
        back.group_parents,
    ) == (ctx.properties, ctx.price_types, ctx.warehouses, ctx.groups, ctx.group_parents)
    assert (back.sections, back.classifier_id, back.changes_only) == ([], "", False)
    assert names.from_json(None) == Context() == names.from_json({"format": 999})
    assert names.is_empty(Context()) and not names.is_empty(back)


def test_a_split_3x_package_resolves_through_the_classifier_of_its_import_file():
    """prices.xml names only ИдТипаЦены, rests.xml only the warehouse's Ид: alone they have
    no price type name or warehouse name; with the names of import.xml they have."""
    alone_prices, alone_rests = _payloads("cml3_prices.xml"), _payloads("cml3_rests.xml")
    assert alone_prices[f"{PRODUCT}:{RETAIL}"]["price_type_name"] is None
    assert alone_rests[f"{PRODUCT}:{STORE}"]["warehouse_name"] is None

    session = _declared("cml3_import.xml")
    prices = _payloads("cml3_prices.xml", names.names(session))
    assert {k: (p["price_type_name"], p["currency"], p["price"]) for k, p in prices.items()} == {
        f"{PRODUCT}:{RETAIL}": ("Розничная", "RUB", "790"),
        f"{VARIANT}:{RETAIL}": ("Розничная", "RUB", "850.00"),
    }
    rests = _payloads("cml3_rests.xml", names.names(session))
    assert {k: (p["warehouse_name"], p["quantity"]) for k, p in rests.items()} == {
        f"{PRODUCT}:{STORE}": ("Основной склад", "14"),
        VARIANT: (None, "3"),
    }


def test_a_price_without_its_currency_takes_the_declared_price_types():
    data = (FIXTURES / "cml3_prices.xml").read_text("utf-8").replace("<Валюта>RUB</Валюта>", "")
    ctx = names.names(_declared("cml3_import.xml"))
    prices = {r.key: r.payload for r in records(io.BytesIO(data.encode()), ctx)}
    assert {p["currency"] for p in prices.values()} == {"643"}
    assert {p["currency"] for p in (r.payload for r in records(io.BytesIO(data.encode())))} == {""}


def test_a_changes_only_classifier_keeps_the_values_it_does_not_repeat():
    """cml210_import_changes.xml re-declares Цвет with Чёрный only; its product also names
    the value ...12, which the last full classifier declared."""
    full = Context(
        properties={
            "7b4e2f10-ff10-11e9-80e5-00155d010b01": Property(
                "Цвет", {"7b4e2f12-ff10-11e9-80e5-00155d010b01": "Белый"}, "Справочник"
            )
        }
    )
    (product,) = [
        p
        for p in _payloads("cml210_import_changes.xml", names.names(full)).values()
        if not p["deleted"]
    ]
    colour = [p for p in product["properties"] if p["name"] == "Цвет"]
    assert [c["labels"] for c in colour] == [["Чёрный"], ["Белый"]]
    # Without the earlier classifier the unknown value stays its id (as before).
    (alone,) = [p for p in _payloads("cml210_import_changes.xml").values() if not p["deleted"]]
    assert [p["labels"] for p in alone["properties"] if p["name"] == "Цвет"][1] == [
        "7b4e2f12-ff10-11e9-80e5-00155d010b01"
    ]


def test_the_summary_tells_the_catalog_and_whether_the_file_holds_only_changes():
    def of(name: str) -> tuple[str, bool, bool]:
        s = check(_file(name))
        return s.catalog, s.changes_only, s.full_classifier

    assert of("cml3_import.xml") == (CATALOG, False, True)
    assert of("cml3_prices.xml") == (CATALOG, False, False)
    assert of("cml210_import_changes.xml") == ("7b4e2f00-ff10-11e9-80e5-00155d010b01", True, False)
    assert of("cml210_offer_changes.xml") == ("7b4e2f00-ff10-11e9-80e5-00155d010b01", True, False)
    # A document naming no catalog (a sale file) has no key.
    assert of("cml3_orders.xml")[0] == ""
