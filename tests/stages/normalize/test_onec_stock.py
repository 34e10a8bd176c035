"""CommerceML offers' stock (every documented layout) and 1С register balances on
raw.onec.stock -> Stock."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from connectors.commerceml.document import records as commerceml_records
from mmstream.models.base import derived_id
from mmstream.models.bounds import OutOfBounds
from mmstream.models.stock import Stock, stock_id
from mmstream.models.warehouse import Warehouse
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_stock import normalize
from stages.normalize.registry import Context, normalizers
from tests.connectors.commerceml import samples

CTX = Context(onec_tz=ZoneInfo("Asia/Yekaterinburg"))
EMPTY = "00000000-0000-0000-0000-000000000000"
PRODUCT = "235ccc6d-ab81-11e4-944a-00155d020201"
VARIANT = "a5abd77f-93f6-11e5-9468-00155d020201"
STORE = "e0b2a4c6-5a11-11e6-80c4-00155d020201"
STORE2 = "e0b2a4c7-5a11-11e6-80c4-00155d020201"


def _document(offer: str, declarations: str = "", version: str = "2.08") -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация ВерсияСхемы='{version}'>"
        f"<ПакетПредложений>{declarations}<Предложения><Предложение>{offer}</Предложение>"
        "</Предложения></ПакетПредложений></КоммерческаяИнформация>"
    ).encode()


def stock_of(data: bytes) -> list:
    """The file read by the bridge's CommerceML reader, its stock records normalized."""
    out = []
    for record in commerceml_records(io.BytesIO(data)):
        if record.entity == "stock":
            out.extend(normalize(record.payload, {}, CTX))
    return out


def test_the_module_claims_the_stock_topic_and_the_entity_sink_reads_it():
    from pathlib import Path

    from mmstream.topics import load_catalog
    from stages.sink.entity_worker import raw_topics

    assert normalizers()["raw.onec.stock"] is normalize
    catalog = load_catalog(Path(__file__).resolve().parents[3] / "topics.yaml")
    assert "raw.onec.stock" in raw_topics(catalog)
    assert catalog["norm.stock"].partitions == catalog["raw.onec.stock"].partitions


def test_every_raw_topic_of_1c_has_a_reader():
    """Design invariant 10 for what 1С writes (push, OData, CommerceML): each raw.onec topic
    is read by the entity sink (it has a normalizer; products too). raw.onec.stock used to be
    written and never read."""
    from pathlib import Path

    from mmstream.topics import load_catalog
    from stages.sink.entity_worker import raw_topics

    catalog = load_catalog(Path(__file__).resolve().parents[3] / "topics.yaml")
    written = {
        t for t, spec in catalog.topics.items() if spec.role == "raw" and t.startswith("raw.onec.")
    }
    read = set(raw_topics(catalog))
    assert written - read == set()


def test_208_rests_per_warehouse_and_the_total():
    declarations = (
        f"<Склады><Склад><Ид>{STORE}</Ид><Наименование>Основной</Наименование></Склад></Склады>"
    )
    offer = (
        f"<Ид>{PRODUCT}#{VARIANT}</Ид><Остатки>"
        "<Остаток><Количество>12</Количество></Остаток>"
        f"<Остаток><Склад><Ид>{STORE}</Ид><Количество>7,5</Количество></Склад></Остаток>"
        f"<Остаток><Склад><Ид>{STORE2}</Ид><Количество>4.5</Количество></Склад></Остаток>"
        "</Остатки>"
    )
    total, named, first, second = stock_of(_document(offer, declarations))
    assert isinstance(named, Warehouse) and (named.id, named.name) == (UUID(STORE), "Основной")
    assert all(isinstance(s, Stock) and s.source == "commerceml" for s in (total, first, second))
    assert (total.warehouse_id, total.quantity) == (None, Decimal("12"))
    assert total.id == stock_id(None, UUID(PRODUCT), UUID(VARIANT))
    assert (first.warehouse_id, first.quantity, first.warehouse_name) == (
        UUID(STORE),
        Decimal("7.5"),
        "Основной",
    )
    assert first.id == derived_id("stock", "onec", f"{STORE}|{PRODUCT}|{VARIANT}")
    assert (second.warehouse_id, second.quantity, second.warehouse_name) == (
        UUID(STORE2),
        Decimal("4.5"),
        "",
    )
    assert (first.product_id, first.characteristic_id) == (UUID(PRODUCT), UUID(VARIANT))
    assert len({total.id, first.id, second.id}) == 3


def test_204_to_207_warehouse_attributes_and_the_total():
    offer = (
        f"<Ид>{PRODUCT}</Ид><Количество>3</Количество>"
        f"<Склад ИдСклада='{STORE}' КоличествоНаСкладе='2'/>"
        f"<Склад ИдСклада='{STORE2}' КоличествоНаСкладе='1'/>"
    )
    total, first, second = stock_of(_document(offer, version="2.05"))
    assert [(s.warehouse_id, s.quantity) for s in (total, first, second)] == [
        (None, Decimal(3)),
        (UUID(STORE), Decimal(2)),
        (UUID(STORE2), Decimal(1)),
    ]
    assert first.characteristic_id is None
    assert first.id == stock_id(UUID(STORE), UUID(PRODUCT), None)


def test_older_warehouse_child_elements():
    offer = (
        f"<Ид>{PRODUCT}</Ид><Склад><ИдСклада>{STORE}</ИдСклада>"
        "<КоличествоНаСкладе>6</КоличествоНаСкладе></Склад>"
    )
    [only] = stock_of(_document(offer, version="2.04"))
    assert (only.warehouse_id, only.quantity) == (UUID(STORE), Decimal(6))


def test_the_same_stock_from_either_layout_is_one_row():
    old = stock_of(
        _document(
            f"<Ид>{PRODUCT}</Ид><Склад ИдСклада='{STORE}' КоличествоНаСкладе='2'/>", version="2.05"
        )
    )
    new = stock_of(
        _document(
            f"<Ид>{PRODUCT}</Ид><Остатки><Остаток><Склад><Ид>{STORE}</Ид>"
            "<Количество>2</Количество></Склад></Остаток></Остатки>"
        )
    )
    assert [s.id for s in old] == [s.id for s in new]


def test_a_site_made_warehouse_id_gets_a_derived_id_and_a_warehouse():
    declarations = (
        "<Склады><Склад><Ид>w1</Ид><Наименование>Курьер Иванов</Наименование></Склад></Склады>"
    )
    offer = (
        f"<Ид>{PRODUCT}</Ид><Остатки><Остаток><Склад><Ид>w1</Ид><Количество>1</Количество>"
        "</Склад></Остаток></Остатки>"
    )
    warehouse, stock = stock_of(_document(offer, declarations))
    assert isinstance(warehouse, Warehouse)
    assert warehouse.id == derived_id("warehouse", "commerceml", "w1") == stock.warehouse_id
    assert (warehouse.name, warehouse.external_ids) == ("Курьер Иванов", {"commerceml": "w1"})
    assert stock.external_ids == {"commerceml": f"{PRODUCT}:w1"}


def test_a_named_guid_warehouse_is_described_for_a_commerceml_only_setup():
    """Bitrix24 takes a balance only into a store it has: with no 1С catalog record of
    Склады (CommerceML only), the package's Склады is the only description there is."""
    declarations = (
        f"<Склады><Склад><Ид>{STORE}</Ид><Наименование>Склад на Лесной</Наименование>"
        "</Склад></Склады>"
    )
    offer = f"<Ид>{PRODUCT}</Ид><Склад ИдСклада='{STORE}' КоличествоНаСкладе='5'/>"
    warehouse, stock = stock_of(_document(offer, declarations))
    assert isinstance(warehouse, Warehouse) and warehouse.source == "commerceml"
    assert (warehouse.id, warehouse.name, warehouse.external_ids) == (
        UUID(STORE),
        "Склад на Лесной",
        {"onec": STORE},
    )
    assert stock.warehouse_id == warehouse.id
    # Unnamed (the file declares no Склады): nothing to describe it with, the stock alone.
    [alone] = stock_of(_document(offer))
    assert isinstance(alone, Stock)


def test_every_stock_record_of_the_bridge_sample_normalizes():
    """The bridge's offers sample (the real offers.xml plus stock): every stock record a
    Stock (each on the named warehouse with that Warehouse's description)."""
    out = [s for s in stock_of(samples.offers_with_stock()) if isinstance(s, Stock)]
    assert len(out) == 2 * len(samples.priced_offer_ids())
    assert len({s.id for s in out}) == len(out)
    assert {s.warehouse_id for s in out} == {None, UUID(samples.WAREHOUSE)}


def test_the_real_offers_file_carries_no_stock(commerceml_offer_records):
    # The real УТ 10.1 export has prices only: no stock records, nothing to lose.
    assert "stock" not in commerceml_offer_records


def test_the_empty_warehouse_reference_is_the_total():
    record = {
        "_source": "commerceml",
        "product_id": PRODUCT,
        "warehouse_id": EMPTY,
        "quantity": "2",
        "version": "v",
    }
    [only] = normalize(record, {}, CTX)
    assert only.warehouse_id is None and only.id == stock_id(None, UUID(PRODUCT), None)


def test_a_deleted_offer_deletes_its_stock():
    data = _document(f"<Ид>{PRODUCT}</Ид><Статус>Удален</Статус><Количество>0</Количество>")
    [only] = stock_of(data)
    assert only.deleted is True


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"product_id": "ORDER_DELIVERY"}, "product_id: not a GUID"),
        ({"product_id": None}, "product_id: missing"),
        ({"quantity": None}, "quantity: missing"),
        ({"quantity": "много"}, "quantity: not a number"),
        ({"version": ""}, "version: missing"),
        ({"_source": "ftp"}, "unknown stock source"),
    ],
)
def test_bad_commerceml_records_are_refused_with_the_reason(change, reason):
    record = {
        "_source": "commerceml",
        "product_id": PRODUCT,
        "characteristic_id": None,
        "offer_id": PRODUCT,
        "deleted": False,
        "warehouse_id": STORE,
        "warehouse_name": None,
        "quantity": "1",
        "version": "v1",
        **change,
    }
    with pytest.raises(Unnormalizable, match=reason):
        normalize(record, {}, CTX)


def test_a_quantity_out_of_bounds_is_refused():
    record = {"_source": "commerceml", "product_id": PRODUCT, "quantity": "1e30", "version": "v"}
    with pytest.raises((Unnormalizable, OutOfBounds)):
        normalize(record, {}, CTX)


# -- 1С accumulation register balances ------------------------------------------------------


def ut11(**changes) -> dict:
    """A УТ 11 AccumulationRegister_ТоварыНаСкладах/Balance record."""
    return {
        "Номенклатура_Key": PRODUCT,
        "Характеристика_Key": VARIANT,
        "Склад_Key": STORE,
        "ВНаличииBalance": 15,
        "ВРезервеСоСкладаBalance": "2,5",
        "Period": "2024-05-01T10:00:00",
        **changes,
    }


def ut103(**changes) -> dict:
    """The same balance as УТ 10.3 names it."""
    return {
        "Номенклатура_Key": PRODUCT,
        "ХарактеристикаНоменклатуры_Key": VARIANT,
        "Склад_Key": STORE,
        "КоличествоBalance": "15",
        "Period": "2024-05-01T10:00:00",
        **changes,
    }


def test_a_ut11_balance_becomes_the_stock_of_the_same_row_as_commerceml():
    [s] = normalize(ut11(), {}, CTX)
    assert s.id == stock_id(UUID(STORE), UUID(PRODUCT), UUID(VARIANT))
    assert (s.quantity, s.reserve, s.source) == (Decimal(15), Decimal("2.5"), "onec")
    stamp = datetime(2024, 5, 1, 10, tzinfo=ZoneInfo("Asia/Yekaterinburg"))
    assert s.as_of == s.source_stamp == stamp
    [cml] = stock_of(
        _document(
            f"<Ид>{PRODUCT}#{VARIANT}</Ид><Остатки><Остаток><Склад><Ид>{STORE}"
            "</Ид><Количество>15</Количество></Склад></Остаток></Остатки>"
        )
    )
    assert cml.id == s.id


def test_a_ut103_balance_and_its_content_version():
    [s] = normalize(ut103(), {}, CTX)
    assert (s.quantity, s.reserve, s.characteristic_id) == (Decimal(15), None, UUID(VARIANT))
    assert s.version.startswith("h:") and normalize(ut103(), {}, CTX)[0].version == s.version
    assert normalize(ut103(КоличествоBalance="16"), {}, CTX)[0].version != s.version
    assert normalize(ut103(DataVersion="AAAAAQ=="), {}, CTX)[0].version == "AAAAAQ=="


def test_an_empty_characteristic_is_the_product_itself():
    [s] = normalize(ut11(Характеристика_Key=EMPTY), {}, CTX)
    assert s.characteristic_id is None and s.id == stock_id(UUID(STORE), UUID(PRODUCT), None)


def test_a_vanished_balance_is_a_deletion():
    [s] = normalize({"_deleted": True, "Номенклатура_Key": PRODUCT, "Склад_Key": STORE}, {}, CTX)
    assert s.deleted is True and s.quantity is None


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"Склад_Key": EMPTY}, "Склад_Key"),
        ({"Номенклатура_Key": None}, "Номенклатура_Key"),
        ({"ВНаличииBalance": None}, "ВНаличииBalance / КоличествоBalance: missing"),
        ({"ВРезервеСоСкладаBalance": [1]}, "ВРезервеСоСкладаBalance: expected a number"),
        ({"Period": "вчера"}, "Period"),
    ],
)
def test_bad_balances_are_refused_with_the_reason(change, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(ut11(**change), {}, CTX)


@pytest.mark.parametrize(
    "label, seed",
    [
        (
            "CommerceML stock",
            {
                "_source": "commerceml",
                "product_id": PRODUCT,
                "characteristic_id": VARIANT,
                "offer_id": f"{PRODUCT}#{VARIANT}",
                "deleted": False,
                "warehouse_id": "w1",
                "warehouse_name": "Склад",
                "quantity": "1.5",
                "version": "v1",
            },
        ),
        ("ТоварыНаСкладах УТ 11", ut11()),
        ("ТоварыНаСкладах УТ 10.3", ut103()),
    ],
)
def test_every_poison_value_in_every_field_ends_published_or_with_a_reason(label, seed):
    """What the other shapes get in test_bounds_properties: a value outside what Avro and
    PostgreSQL carry is dead-lettered with a reason, never an exception past the sink."""
    from tests.stages.normalize.bounds_harness import DEAD_LETTERED, Case, sweep

    counts = sweep(Case(label, seed, "raw.onec.stock", ctx=CTX))
    assert counts[DEAD_LETTERED] > 0
