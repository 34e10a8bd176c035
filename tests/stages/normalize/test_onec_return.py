"""raw.onec.return (ВозвратТоваровОтКлиента / ВозвратТоваровОтПокупателя) -> Return."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from connectors.onec.objects import lookup
from mmstream.models.return_ import Return
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_return import normalize
from stages.normalize.registry import Context, normalizers

MSK = ZoneInfo("Europe/Moscow")
EMPTY = "00000000-0000-0000-0000-000000000000"
REF = "5d1b6a3e-2f4c-11ef-8a6b-000c29b45b09"
SALE = "8b9660f6-6332-11ec-ad72-000c29b45b09"
ORDER = "7c2a1e44-6330-11ec-ad72-000c29b45b09"


def ut11_return(**fields) -> dict:
    """A УТ 11 ВозвратТоваровОтКлиента in the standard OData shape."""
    return {
        "Ref_Key": REF,
        "DataVersion": "AAAADAAAAAA=",
        "DeletionMark": False,
        "Number": "ВК00-000017",
        "Date": "2024-06-03T12:30:00",
        "Posted": True,
        "Организация_Key": "87fa6cc2-e901-11ea-8591-000c29b45b09",
        "Партнер_Key": "b7569bcd-f670-11ea-8591-000c29b45b09",
        "Контрагент_Key": "b7569bce-f670-11ea-8591-000c29b45b09",
        "Договор_Key": EMPTY,
        "Склад_Key": "f40235d3-d84c-11ea-8133-0050569f62a1",
        "Валюта_Key": "a192de9a-d84c-11ea-8133-0050569f62a1",
        "СуммаДокумента": "2 400,00",
        "ЦенаВключаетНДС": True,
        "ХозяйственнаяОперация": "ВозвратОтКлиента",
        "Комментарий": "Возврат курьером: брак",
        "ДокументРеализации": SALE,
        "ДокументРеализации_Type": "StandardODATA.Document_РеализацияТоваровУслуг",
        "ЗаказКлиента": ORDER,
        "ЗаказКлиента_Type": "StandardODATA.Document_ЗаказКлиента",
        "Товары": [
            {
                "Ref_Key": REF,
                "LineNumber": "2",
                "Номенклатура_Key": "2d4fe756-48a4-11ec-ad72-000c29b45b09",
                "Характеристика_Key": EMPTY,
                "Количество": 1,
                "Цена": 400,
                "Сумма": 400,
                "СтавкаНДС_Key": "c1d9e0a2-0b7e-11ee-8a6b-000c29b45b09",
                "СуммаНДС": 66.67,
            },
            {
                "Ref_Key": REF,
                "LineNumber": "1",
                "Номенклатура_Key": "2d4fe75f-48a4-11ec-ad72-000c29b45b09",
                "Характеристика_Key": EMPTY,
                "Количество": "2",
                "Цена": "1000",
                "Сумма": "2000",
                "СтавкаНДС_Key": EMPTY,
                "СуммаНДС": 333.33,
            },
        ],
        **fields,
    }


def test_the_topic_is_claimed_here():
    assert normalizers()["raw.onec.return"] is normalize


@pytest.mark.parametrize(
    "name",
    ["ВозвратТоваровОтКлиента", "ВозвратТоваровОтПокупателя", "Document_ВозвратТоваровОтКлиента"],
)
def test_both_configurations_publish_to_this_topic(name):
    assert lookup(name).topic == "raw.onec.return"


def test_real_document_shape(onec_sale_document):
    """The only real 1С document fixture (БП 3.0 over OData) shares the УТ 10.3 names a
    ВозвратТоваровОтПокупателя uses: ВалютаДокумента, ДоговорКонтрагента, СуммаВключаетНДС,
    СтавкаНДС as an enumeration, composite Субконто / Undefined ДокументОприходования."""
    (out,) = normalize(onec_sale_document, {}, Context(onec_tz=MSK))
    assert isinstance(out, Return)
    assert out.id == UUID(onec_sale_document["Ref_Key"]) and out.source == "onec"
    assert out.version == "AAAACgAAAAA="
    assert out.date == datetime(2021, 12, 22, 17, 22, 8, tzinfo=MSK)
    assert out.amount == Decimal("150129")
    assert out.currency_id == UUID("a192de9a-d84c-11ea-8133-0050569f62a1")
    assert out.contract_id is None  # the all-zero GUID
    assert out.amount_includes_vat is True
    assert [(line.line_number, line.quantity, line.vat_percent) for line in out.lines] == [
        (1, Decimal("25"), Decimal("20")),
        (2, Decimal("2"), Decimal("20")),
    ]
    assert out.external_ids == {"onec": onec_sale_document["Ref_Key"]}
    # Courier fields and the status are other owners': left at defaults.
    assert (out.courier_id, out.courier_stage, out.status) == (None, "", "new")


def test_ut11_return_with_composite_references():
    (out,) = normalize(ut11_return(), {}, Context(onec_tz=MSK))
    assert out.number == "ВК00-000017" and out.posted is True
    assert out.shipment_id == UUID(SALE)
    assert out.order_id == UUID(ORDER)
    assert out.partner_id == UUID("b7569bcd-f670-11ea-8591-000c29b45b09")
    assert out.amount == Decimal("2400.00")  # a number as a string with a space and a comma
    assert out.comment == "Возврат курьером: брак"
    assert out.operation == "ВозвратОтКлиента"
    # Lines in LineNumber order although "2" came first; a string LineNumber is a number.
    assert [line.line_number for line in out.lines] == [1, 2]
    assert out.lines[0].characteristic_id is None and out.lines[0].vat_rate_id is None
    assert out.lines[1].vat_rate_id == UUID("c1d9e0a2-0b7e-11ee-8a6b-000c29b45b09")


def test_shipment_named_only_on_the_lines():
    record = ut11_return(ДокументРеализации="", ДокументРеализации_Type="StandardODATA.Undefined")
    for line in record["Товары"]:
        line.update(
            ДокументРеализации=SALE,
            ДокументРеализации_Type="StandardODATA.Document_РеализацияТоваровУслуг",
        )
    (out,) = normalize(record, {}, Context())
    assert out.shipment_id == UUID(SALE)


def test_lines_of_several_shipments_leave_the_header_without_one():
    record = ut11_return(ДокументРеализации="", ДокументРеализации_Type="StandardODATA.Undefined")
    for line, sale in zip(record["Товары"], (SALE, REF), strict=True):
        line.update(
            ДокументРеализации=sale,
            ДокументРеализации_Type="StandardODATA.Document_РеализацияТоваровУслуг",
        )
    (out,) = normalize(record, {}, Context())
    assert out.shipment_id is None


def test_base_document_of_another_kind_is_not_a_shipment():
    record = ut11_return(
        ДокументРеализации="",
        ДокументОснование=ORDER,
        ДокументОснование_Type="StandardODATA.Document_ЗаказКлиента",
    )
    (out,) = normalize(record, {}, Context())
    assert out.shipment_id is None


def test_deletion_mark_and_deletion_record():
    (marked,) = normalize(ut11_return(DeletionMark=True), {}, Context())
    assert marked.deleted and marked.lines
    (gone,) = normalize(
        {
            "Ref_Key": REF,
            "DataVersion": "deleted:AAAADAAAAAA=",
            "DeletionMark": True,
            "_deleted": True,
        },
        {},
        Context(),
    )
    assert gone.deleted and gone.id == UUID(REF) and gone.number == ""


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"Date": "0001-01-01T00:00:00"}, "Date"),
        ({"Ref_Key": EMPTY}, "Ref_Key"),
        ({"DataVersion": ""}, "DataVersion"),
        ({"Склад_Key": "склад-1"}, "Склад_Key"),
        ({"Товары": [{"LineNumber": "первая", "Количество": 1}]}, "LineNumber"),
        ({"Товары": [{"LineNumber": "1", "Количество": "два"}]}, "Количество"),
        ({"Товары": {"LineNumber": "1"}}, "Товары"),
        ({"Комментарий": "\x00"}, "NUL"),
    ],
)
def test_rejections_name_the_field(patch, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize(ut11_return(**patch), {}, Context())
