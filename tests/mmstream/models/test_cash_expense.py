"""CashExpense carries what an SLA check needs."""

from __future__ import annotations

from mmstream.models.cash_expense import CashExpense
from tests.mmstream.models.test_cash_receipt import SLA_FIELDS


def test_entity_and_sla_fields():
    assert CashExpense.ENTITY == "cash_expense"
    assert SLA_FIELDS | {"issued_to"} <= set(CashExpense.model_fields)
