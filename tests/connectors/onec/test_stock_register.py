"""ТоварыНаСкладах (accumulation register) as stock: every name of it, the balance shape the
bridge accepts (УТ 11 and УТ 10.3 names), movements refused with a code, and a validated
balance through the stock normalizer."""

from __future__ import annotations

import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors.onec.objects import lookup
from connectors.onec.validation import (
    MOVEMENTS_REFUSED,
    RecordRejected,
    deletion_record,
    validate,
)
from mmstream.models.stock import stock_id
from stages.normalize.onec_stock import normalize
from stages.normalize.registry import Context

ZERO = "00000000-0000-0000-0000-000000000000"
CTX = Context(onec_tz=ZoneInfo("Europe/Moscow"))
STOCK = lookup("ТоварыНаСкладах")


def ut11(**extra) -> dict:
    """A row of AccumulationRegister_ТоварыНаСкладах/Balance(Dimensions='Склад,Номенклатура,
    Характеристика') of УТ 11."""
    return {
        "Склад_Key": WAREHOUSE,
        "Номенклатура_Key": PRODUCT,
        "Характеристика_Key": ZERO,
        "ВНаличииBalance": 12,
        "ВРезервеСоСкладаBalance": 2,
        **extra,
    }


WAREHOUSE, PRODUCT = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize(
    "name",
    [
        "ТоварыНаСкладах",
        "AccumulationRegister_ТоварыНаСкладах",
        "AccumulationRegister_ТоварыНаСкладах_RecordType",
        "AccumulationRegister_ТоварыНаСкладах/Balance",
        "AccumulationRegister_ТоварыНаСкладах/Balance(Period=datetime'2026-12-01T00:00:00')",
        "accumulationregister_товарынаскладах",
    ],
)
def test_every_name_of_the_register_is_the_stock_object(name):
    obj = lookup(name)
    assert obj is STOCK
    assert (obj.entity, obj.topic, obj.odata_name) == (
        "stock",
        "raw.onec.stock",
        "AccumulationRegister_ТоварыНаСкладах",
    )
    # The reader scans balances by the three dimensions a stock row is kept by.
    assert obj.read_set == (
        "AccumulationRegister_ТоварыНаСкладах/Balance"
        "(Dimensions='Склад,Номенклатура,Характеристика')"
    )


def test_the_price_register_is_unchanged():
    price = lookup("ЦеныНоменклатуры")
    assert (price.accumulation, price.odata_name, price.read_set) == (
        False,
        "InformationRegister_ЦеныНоменклатуры",
        "InformationRegister_ЦеныНоменклатуры",
    )


def test_a_ut11_and_a_ut103_balance_of_one_stock_row_share_its_key():
    first = validate(STOCK, ut11())
    ut103 = {
        "Склад_Key": WAREHOUSE,
        "Номенклатура_Key": PRODUCT,
        "ХарактеристикаНоменклатуры_Key": ZERO,
        "КоличествоBalance": 12.5,
        "DataVersion": "AAAAAQ==",
    }
    second = validate(STOCK, ut103)
    key = str(stock_id(uuid.UUID(WAREHOUSE), uuid.UUID(PRODUCT), None))
    assert first.key == second.key == key
    assert first.version.startswith("h:") and second.version == "AAAAAQ=="
    assert first.ident == {
        "Склад_Key": WAREHOUSE,
        "Номенклатура_Key": PRODUCT,
        "Характеристика_Key": ZERO,
    }
    assert validate(STOCK, ut11(ВНаличииBalance=13)).version != first.version


def test_a_variant_is_its_own_stock_row():
    variant = str(uuid.uuid4())
    record = validate(STOCK, ut11(Характеристика_Key=variant))
    assert record.key == str(stock_id(uuid.UUID(WAREHOUSE), uuid.UUID(PRODUCT), uuid.UUID(variant)))


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (
            {
                "Recorder": str(uuid.uuid4()),
                "Recorder_Type": "StandardODATA.Document_ПриобретениеТоваровУслуг",
                "RecordSet": [
                    {
                        "Recorder": str(uuid.uuid4()),
                        "Period": "2026-12-01T10:00:00",
                        "LineNumber": "1",
                        "Active": True,
                        "RecordType": "Receipt",
                        "Номенклатура_Key": PRODUCT,
                        "Склад_Key": WAREHOUSE,
                        "ВНаличии": 5,
                    }
                ],
            },
            "RecordSet",
        ),
        (
            {
                "Recorder": str(uuid.uuid4()),
                "Period": "2026-12-01T10:00:00",
                "LineNumber": "1",
                "Active": True,
                "RecordType": "Expense",
                "Номенклатура_Key": PRODUCT,
                "Склад_Key": WAREHOUSE,
                "ВНаличии": 5,
            },
            "RecordType",
        ),
    ],
)
def test_movements_are_refused_with_their_code(doc, field):
    with pytest.raises(RecordRejected) as caught:
        validate(STOCK, doc)
    assert field in {d["field"] for d in caught.value.details}
    assert {d["code"] for d in caught.value.details} == {MOVEMENTS_REFUSED}
    assert "Balance" in caught.value.details[0]["problem"]


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"Склад_Key": WAREHOUSE, "Номенклатура_Key": PRODUCT}, "ВНаличииBalance"),
        ({"Склад_Key": ZERO, "Номенклатура_Key": PRODUCT, "ВНаличии": 1}, "Склад_Key"),
        ({"Номенклатура_Key": PRODUCT, "ВНаличии": 1}, "Склад_Key"),
        (
            {"Склад_Key": WAREHOUSE, "Номенклатура_Key": "не GUID", "ВНаличии": 1},
            "Номенклатура_Key",
        ),
        ({"Склад_Key": WAREHOUSE, "Номенклатура_Key": PRODUCT, "ВНаличии": "много"}, "ВНаличии"),
        (
            {"Склад_Key": WAREHOUSE, "Номенклатура_Key": PRODUCT, "ВНаличии": 1, "Period": "вчера"},
            "Period",
        ),
    ],
)
def test_a_bad_balance_names_its_field(doc, field):
    with pytest.raises(RecordRejected) as caught:
        validate(STOCK, doc)
    assert field in {d["field"] for d in caught.value.details}


def test_a_vanished_balance_is_a_deletion():
    first = validate(STOCK, ut11())
    gone = validate(STOCK, deletion_record(first.ident, first.version))
    assert (gone.deleted, gone.key) == (True, first.key)
    [stock] = normalize(deletion_record(first.ident, first.version), {}, CTX)
    assert stock.deleted and stock.id == uuid.UUID(first.key)


def test_a_balance_without_period_is_as_of_when_the_bridge_took_it():
    """5 -> 3 -> 5: the third balance has the content of the first; with the moment in its
    version it is a new version, not a repeat the sink drops as stale."""
    at = [{"ce_time": f"2026-12-07T10:0{i}:00Z"} for i in range(3)]
    versions = [
        normalize(ut11(ВНаличииBalance=q), h, CTX)[0] for q, h in zip((5, 3, 5), at, strict=True)
    ]
    assert [s.quantity for s in versions] == [Decimal(5), Decimal(3), Decimal(5)]
    assert len({s.version for s in versions}) == 3
    assert [s.as_of.isoformat() for s in versions] == [
        "2026-12-07T10:00:00+00:00",
        "2026-12-07T10:01:00+00:00",
        "2026-12-07T10:02:00+00:00",
    ]
    assert versions[0].source_stamp == versions[0].as_of
    # The same record taken at the same moment (a replay) is the same version.
    assert normalize(ut11(ВНаличииBalance=5), at[0], CTX)[0].version == versions[0].version
    assert versions[0].id == uuid.UUID(validate(STOCK, ut11()).key)
