"""ПриходныйКассовыйОрдер -> CashReceipt: what an SLA check needs (date, amount, courier,
base document), in УТ 11 and УТ 10.3 shapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from connectors.onec.validation import deletion_record
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_cash_receipt import normalize
from stages.normalize.registry import normalizers

ORDER = UUID("5f0c1a10-0000-11ee-8000-000c29b45b09")
SHIPMENT = UUID("8b9660f6-6332-11ec-ad72-000c29b45b09")
COURIER = UUID("66666666-0000-11ee-8000-000c29b45b09")


def test_the_module_claims_the_topic():
    assert normalizers()["raw.onec.cash_receipt"] is normalize


def test_ut11_receipt_from_a_courier(ut11_cash_receipt, ctx):
    (doc,) = normalize(ut11_cash_receipt, {}, ctx)
    assert doc.date == datetime(2024, 3, 5, 9, 15, tzinfo=ZoneInfo("Europe/Moscow"))
    assert doc.amount == Decimal("1234.5") and doc.posted is True
    assert doc.employee_id == COURIER
    assert doc.received_from == "Петров Пётр (курьер)" and doc.basis == "Оплата заказа"
    assert doc.cash_desk_id == UUID("55555555-0000-11ee-8000-000c29b45b09")
    assert doc.counterparty_id == UUID("22222222-0000-11ee-8000-000c29b45b09")
    assert (doc.base_document_id, doc.base_document_kind) == (ORDER, "Document_ЗаказКлиента")
    assert doc.order_id == ORDER  # the base document
    assert doc.shipment_id == SHIPMENT  # the one shipment the payment lines name
    (line,) = doc.payments
    assert (line.shipment_id, line.order_id, line.amount) == (SHIPMENT, None, Decimal("1234.5"))
    assert line.base_document_kind == "Document_РеализацияТоваровУслуг"
    assert line.counterparty_id == UUID("11111111-0000-11ee-8000-000c29b45b09")
    assert line.contract_id is None


def test_ut103_composite_counterparty_of_type_person_is_the_employee(ut103_cash_receipt, ctx):
    (doc,) = normalize(ut103_cash_receipt, {}, ctx)
    assert doc.employee_id == COURIER and doc.counterparty_id is None
    assert doc.base_document_id is None and doc.base_document_kind == ""  # Undefined
    assert doc.amount == Decimal("500.00") and doc.payments == ()
    assert doc.operation == "ПриемВозвратаОтПодотчетника"


def test_two_different_orders_in_the_lines_name_no_header_order(ut11_cash_receipt, ctx):
    line = ut11_cash_receipt["РасшифровкаПлатежа"][0]
    other = {**line, "LineNumber": "2", "Заказ": "5f0c1a10-0000-11ee-8000-000c29b45b10"}
    record = {**ut11_cash_receipt, "РасшифровкаПлатежа": [line, other]}
    assert normalize(record, {}, ctx)[0].shipment_id is None


def test_a_deletion_record(ctx):
    record = deletion_record({"Ref_Key": "7b0c1a10-0000-11ee-8000-000c29b45b09"}, "AAAAAQAAAAA=")
    (doc,) = normalize(record, {}, ctx)
    assert doc.deleted and doc.amount is None and doc.payments == ()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Date": ""}, "Date"),
        ({"ДокументОснование": "не гуид"}, "ДокументОснование"),
        ({"ПодотчетноеЛицо_Key": 42}, "ПодотчетноеЛицо_Key"),
        (
            {"РасшифровкаПлатежа": [{"LineNumber": "1", "Сумма": "1 234,5 руб"}]},
            "РасшифровкаПлатежа line 1: Сумма",
        ),
    ],
)
def test_rejections_name_the_field(ut11_cash_receipt, ctx, change, field):
    with pytest.raises(Unnormalizable, match=field):
        normalize({**ut11_cash_receipt, **change}, {}, ctx)
