"""РасходныйКассовыйОрдер -> CashExpense (УТ 10.3 shape: composite Контрагент, Сделка)."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_cash_expense import normalize
from stages.normalize.registry import normalizers

ORDER = UUID("6a0c1a10-0000-11ee-8000-000c29b45b09")


def test_the_module_claims_the_topic():
    assert normalizers()["raw.onec.cash_expense"] is normalize


def test_ut103_expense(ut103_cash_expense, ctx):
    (doc,) = normalize(ut103_cash_expense, {}, ctx)
    assert doc.counterparty_id == UUID("22222222-0000-11ee-8000-000c29b45b09")
    assert doc.employee_id is None  # a counterparty, not a person
    assert doc.contract_id == UUID("44444444-0000-11ee-8000-000c29b45b09")
    assert doc.issued_to == "Сидорову С.С." and doc.basis == "Возврат предоплаты"
    assert doc.amount == Decimal(3000) and doc.currency_id is not None
    assert doc.order_id == ORDER  # both lines name the same order
    assert [p.amount for p in doc.payments] == [Decimal(1000), Decimal("2000.00")]
    assert all(
        p.order_id == ORDER and p.base_document_kind == "Document_ЗаказПокупателя"
        for p in doc.payments
    )


def test_ut11_accountable_person(ut103_cash_expense, ctx):
    record = {k: v for k, v in ut103_cash_expense.items() if not k.startswith("Контрагент")}
    record["ПодотчетноеЛицо_Key"] = "66666666-0000-11ee-8000-000c29b45b09"
    (doc,) = normalize(record, {}, ctx)
    assert doc.employee_id == UUID("66666666-0000-11ee-8000-000c29b45b09")
    assert doc.counterparty_id is None


def test_rejection_names_the_line(ut103_cash_expense, ctx):
    lines = [{**ut103_cash_expense["РасшифровкаПлатежа"][0], "Сделка": "0xdeadbeef"}]
    with pytest.raises(Unnormalizable, match="РасшифровкаПлатежа line 1: Сделка"):
        normalize({**ut103_cash_expense, "РасшифровкаПлатежа": lines}, {}, ctx)
