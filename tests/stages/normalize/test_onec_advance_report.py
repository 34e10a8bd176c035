"""АвансовыйОтчет -> AdvanceReport (УТ 10.3 and УТ 11 names)."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_advance_report import normalize
from stages.normalize.registry import normalizers

COURIER = UUID("66666666-0000-11ee-8000-000c29b45b09")


def test_the_module_claims_the_topic():
    assert normalizers()["raw.onec.advance_report"] is normalize


def test_ut103_report(ut103_advance_report, ctx):
    (doc,) = normalize(ut103_advance_report, {}, ctx)
    assert doc.employee_id == COURIER and doc.purpose == "ГСМ и парковка"
    assert doc.advance_ids == (UUID("8d0c1a10-0000-11ee-8000-000c29b45b09"),)
    assert [(line.section, line.line_number) for line in doc.lines] == [
        ("Товары", 1),
        ("Прочее", 1),
    ]
    goods, parking = doc.lines
    assert (goods.quantity, goods.price, goods.amount) == (
        Decimal("40.5"),
        Decimal("30.5"),
        Decimal("1235.25"),
    )
    assert (parking.content, parking.vat_rate, parking.vat_percent) == (
        "Парковка у склада",
        "БезНДС",
        None,
    )
    (supplier,) = doc.supplier_payments
    assert supplier.counterparty_id == UUID("22222222-0000-11ee-8000-000c29b45b09")
    assert supplier.amount == Decimal(500) and supplier.contract_id is None
    total = sum(line.amount for line in doc.lines) + supplier.amount
    assert total == doc.amount


def test_ut11_names(ut103_advance_report, ctx):
    record = {k: v for k, v in ut103_advance_report.items() if k not in ("ФизЛицо_Key", "Прочее")}
    record.update(ПодотчетноеЛицо_Key=str(COURIER), ПрочиеРасходы=ut103_advance_report["Прочее"])
    (doc,) = normalize(record, {}, ctx)
    assert doc.employee_id == COURIER
    assert [line.section for line in doc.lines] == ["Товары", "ПрочиеРасходы"]


def test_empty_sections_and_undefined_advance(ut103_advance_report, ctx):
    advance = {
        **ut103_advance_report["ВыданныеАвансы"][0],
        "ДокументАванса": "",
        "ДокументАванса_Type": "StandardODATA.Undefined",
    }
    record = {**ut103_advance_report, "ВыданныеАвансы": [advance], "Товары": [], "Прочее": []}
    (doc,) = normalize(record, {}, ctx)
    assert doc.advance_ids == () and doc.lines == ()


def test_rejection_names_section_and_field(ut103_advance_report, ctx):
    lines = [{**ut103_advance_report["Прочее"][0], "СуммаНДС": "n/a"}]
    with pytest.raises(Unnormalizable, match="Прочее line 1: СуммаНДС"):
        normalize({**ut103_advance_report, "Прочее": lines}, {}, ctx)
