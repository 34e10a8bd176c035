"""РеализацияТоваровУслуг -> Shipment, on the real БП 3.0 capture and its УТ variants."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from connectors.onec.validation import deletion_record
from stages.normalize.derive_delivery_task import delivery_task_id
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_shipment import normalize
from stages.normalize.registry import Context, normalizers


def test_the_module_claims_the_shipment_topic():
    assert normalizers()["raw.onec.shipment"] is normalize


def test_real_goods_shipment(bp30_shipments, ctx):
    (doc,) = normalize(bp30_shipments[0], {}, ctx)
    assert doc.id == UUID("8b9660f6-6332-11ec-ad72-000c29b45b09")
    assert (doc.source, doc.version, doc.deleted) == ("onec", "AAAACgAAAAA=", False)
    assert doc.external_ids == {"onec": "8b9660f6-6332-11ec-ad72-000c29b45b09"}
    assert doc.number == "0000-000001" and doc.posted is False
    assert doc.date == datetime(2021, 12, 22, 17, 22, 8, tzinfo=ZoneInfo("Europe/Moscow"))
    assert doc.amount == Decimal("150129") and doc.amount_includes_vat is True
    assert doc.counterparty_id == UUID("b7569bcd-f670-11ea-8591-000c29b45b09")
    assert doc.organization_id == UUID("87fa6cc2-e901-11ea-8591-000c29b45b09")
    assert doc.warehouse_id == UUID("f40235d3-d84c-11ea-8133-0050569f62a1")
    assert doc.currency_id == UUID("a192de9a-d84c-11ea-8133-0050569f62a1")
    assert doc.responsible_id == UUID("10f78d15-dfe4-11eb-b4ad-000c29b45b09")
    assert doc.operation == "Товары"
    assert [(line.section, line.line_number) for line in doc.lines] == [
        ("Товары", 1),
        ("Товары", 2),
    ]
    first = doc.lines[0]
    assert first.product_id == UUID("2d4fe75f-48a4-11ec-ad72-000c29b45b09")
    assert (first.quantity, first.price, first.amount) == (
        Decimal(25),
        Decimal(5455),
        Decimal(136375),
    )
    assert (first.vat_rate, first.vat_percent, first.vat_amount) == (
        "НДС20",
        Decimal(20),
        Decimal("22729.17"),
    )
    assert sum(line.amount for line in doc.lines) == doc.amount


def test_real_services_shipment_keeps_the_cyrillic_content(bp30_shipments, ctx):
    (doc,) = normalize(bp30_shipments[1], {}, ctx)
    assert [line.section for line in doc.lines] == ["Услуги", "Услуги"]
    assert doc.lines[0].content == "сборка каркаса мойки"
    assert doc.lines[1].vat_amount == Decimal("9407.33")
    assert sum(line.amount for line in doc.lines) == doc.amount == Decimal(108554)


def test_all_zero_guids_are_no_reference(bp30_shipments, ctx):
    (doc,) = normalize(bp30_shipments[0], {}, ctx)
    # ДоговорКонтрагента_Key and the line's unused references are the empty GUID.
    assert doc.contract_id is None and doc.partner_id is None and doc.order_id is None
    assert doc.lines[0].characteristic_id is None and doc.lines[0].warehouse_id is None


def test_the_date_takes_the_zone_of_the_1c_base(bp30_shipments):
    (doc,) = normalize(bp30_shipments[0], {}, Context(onec_tz=ZoneInfo("Asia/Yekaterinburg")))
    assert doc.date.isoformat() == "2021-12-22T17:22:08+05:00"


def test_an_undefined_composite_is_no_reference(bp30_shipments, ctx):
    record = {**bp30_shipments[0], "Сделка": "", "Сделка_Type": "StandardODATA.Undefined"}
    assert normalize(record, {}, ctx)[0].order_id is None


def test_ut103_order_as_a_composite_deal(bp30_shipments, ctx):
    order = "6a0c1a10-0000-11ee-8000-000c29b45b09"
    record = {
        **bp30_shipments[0],
        "Сделка": order,
        "Сделка_Type": "StandardODATA.Document_ЗаказПокупателя",
    }
    assert normalize(record, {}, ctx)[0].order_id == UUID(order)


def test_a_composite_of_another_type_is_not_taken_for_an_order(bp30_shipments, ctx):
    record = {
        **bp30_shipments[0],
        "Сделка": "6a0c1a10-0000-11ee-8000-000c29b45b09",
        "Сделка_Type": "StandardODATA.Document_СчетНаОплатуПокупателю",
    }
    assert normalize(record, {}, ctx)[0].order_id is None


def test_ut11_names(bp30_shipments, ctx):
    base = {
        k: v
        for k, v in bp30_shipments[0].items()
        if k not in ("ВалютаДокумента_Key", "ДоговорКонтрагента_Key", "СуммаВключаетНДС")
    }
    order = "5f0c1a10-0000-11ee-8000-000c29b45b09"
    lines = [
        {**line, "ЗаказКлиента": order, "ЗаказКлиента_Type": "StandardODATA.Document_ЗаказКлиента"}
        for line in base["Товары"]
    ]
    record = {
        **base,
        "Валюта_Key": "a192de9a-d84c-11ea-8133-0050569f62a1",
        "Договор_Key": "44444444-0000-11ee-8000-000c29b45b09",
        "Партнер_Key": "11111111-0000-11ee-8000-000c29b45b09",
        "ЦенаВключаетНДС": False,
        "ЗаказКлиента": order,
        "ЗаказКлиента_Type": "StandardODATA.Document_ЗаказКлиента",
        "Статус": "КДоставке",
        "Товары": lines,
    }
    (doc,) = normalize(record, {}, ctx)
    assert doc.order_id == UUID(order) and doc.lines[0].order_id == UUID(order)
    assert doc.currency_id == UUID("a192de9a-d84c-11ea-8133-0050569f62a1")
    assert doc.contract_id == UUID("44444444-0000-11ee-8000-000c29b45b09")
    assert doc.partner_id == UUID("11111111-0000-11ee-8000-000c29b45b09")
    assert (doc.status, doc.amount_includes_vat) == ("КДоставке", False)


def test_numbers_as_strings_and_lines_out_of_order(bp30_shipments, ctx):
    first, second = bp30_shipments[0]["Товары"]
    lines = [{**second, "Количество": "2", "Сумма": "13754,00"}, {**first, "СуммаНДС": "22729.17"}]
    (doc,) = normalize(
        {**bp30_shipments[0], "Товары": lines, "СуммаДокумента": "150129.00"}, {}, ctx
    )
    assert [line.line_number for line in doc.lines] == [1, 2]
    assert doc.lines[1].amount == Decimal("13754.00") and doc.amount == Decimal("150129.00")


def test_deletion_mark_keeps_the_content(bp30_shipments, ctx):
    (doc,) = normalize({**bp30_shipments[0], "DeletionMark": True}, {}, ctx)
    assert doc.deleted is True and doc.number == "0000-000001" and len(doc.lines) == 2


def test_a_vanished_document_is_a_deletion_with_identity_only(ctx):
    record = deletion_record({"Ref_Key": "8b9660f6-6332-11ec-ad72-000c29b45b09"}, "AAAACgAAAAA=")
    (doc,) = normalize(record, {}, ctx)
    assert doc.deleted is True and doc.version == "deleted:AAAACgAAAAA="
    assert doc.date is None and doc.lines == () and doc.number == ""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Ref_Key": "00000000-0000-0000-0000-000000000000"}, "Ref_Key"),
        ({"Ref_Key": "не-гуид"}, "Ref_Key"),
        ({"DataVersion": ""}, "DataVersion"),
        ({"Date": "0001-01-01T00:00:00"}, "Date"),
        ({"Date": "22.12.2021 17:22:08"}, "Date"),
        ({"Posted": "может быть"}, "Posted"),
        ({"СуммаДокумента": "сто"}, "СуммаДокумента"),
        ({"Комментарий": "a\x00b"}, "NUL"),
        ({"Товары": {"LineNumber": "1"}}, "Товары"),
        ({"Товары": ["строка"]}, "Товары.0"),
    ],
)
def test_rejections_name_the_field(bp30_shipments, ctx, change, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize({**bp30_shipments[0], **change}, {}, ctx)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"LineNumber": "0"}, "LineNumber"),
        ({"LineNumber": 1.5}, "LineNumber"),
        ({"Количество": "двадцать"}, "Количество"),
        ({"Номенклатура_Key": "nope"}, "Номенклатура_Key"),
    ],
)
def test_line_rejections_name_section_and_field(bp30_shipments, ctx, change, field):
    lines = [{**bp30_shipments[0]["Товары"][0], **change}]
    with pytest.raises(Unnormalizable, match=f"Товары.*{field}"):
        normalize({**bp30_shipments[0], "Товары": lines}, {}, ctx)


def test_not_an_object_is_refused(ctx):
    with pytest.raises(Unnormalizable, match="JSON object"):
        normalize(["Ref_Key"], {}, ctx)  # type: ignore[arg-type]


def test_a_shipment_without_an_order_to_deliver_gives_its_own_delivery_task(bp30_shipments, ctx):
    record = {**bp30_shipments[0], "АдресДоставки": "г. Москва, ул. Тверская, д. 1"}
    shipment, task = normalize(record, {}, ctx)
    assert task.id == delivery_task_id(None, shipment.id)
    assert (task.shipment_id, task.order_id) == (shipment.id, None)
    assert (task.number, task.delivery_address) == ("0000-000001", "г. Москва, ул. Тверская, д. 1")
    assert task.amount_to_collect == Decimal("150129") and task.version == "shipment:AAAACgAAAAA="
    marked = normalize({**record, "DeletionMark": True}, {}, ctx)[1]
    assert marked.deleted  # a shipment without an order takes its own task with it


def test_a_shipment_of_an_order_or_without_an_address_gives_no_task(bp30_shipments, ctx):
    record = {
        **bp30_shipments[0],
        "АдресДоставки": "г. Москва, ул. Тверская, д. 1",
        "ЗаказКлиента_Key": "5f0c1a10-0000-11ee-8000-000c29b45b09",
    }
    assert [type(e).__name__ for e in normalize(record, {}, ctx)] == ["Shipment"]
    assert [type(e).__name__ for e in normalize(bp30_shipments[0], {}, ctx)] == ["Shipment"]
    everything = Context(delivery_needs_address=False)
    assert [type(e).__name__ for e in normalize(bp30_shipments[0], {}, everything)] == [
        "Shipment",
        "DeliveryTask",
    ]
