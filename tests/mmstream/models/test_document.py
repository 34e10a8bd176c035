"""Accounting documents: every field described, refs name entities, 1С owns everything."""

from __future__ import annotations

import pytest

from mmstream.models.advance_report import AdvanceReport
from mmstream.models.cash_expense import CashExpense
from mmstream.models.cash_receipt import CashReceipt
from mmstream.models.catalog import entity_models
from mmstream.models.customer_order import CustomerOrder
from mmstream.models.document import AccountingDocument, CashDocument
from mmstream.models.shipment import Shipment
from tests.mmstream.models.test_lines import ENTITIES

DOCUMENTS = [CustomerOrder, Shipment, CashReceipt, CashExpense, AdvanceReport]


@pytest.mark.parametrize("model", DOCUMENTS)
def test_fields_are_described_and_refs_name_entities(model):
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"
        ref = (info.json_schema_extra or {}).get("ref")
        assert ref is None or ref in ENTITIES, f"{model.__name__}.{name} -> {ref}"


@pytest.mark.parametrize("model", DOCUMENTS)
def test_1c_owns_every_field_and_its_exchange_speaks_for_it(model):
    assert model.OWNER == "onec" and model.FIELD_OWNERS == {}
    for field in model.content_fields():
        assert model.owns("onec", field) and model.owns("commerceml", field)
        assert not model.owns("bitrix24", field) and not model.owns("middleware", field)


def test_the_bases_are_not_entities():
    models = entity_models()
    assert AccountingDocument not in models.values() and CashDocument not in models.values()
    assert {m.ENTITY for m in DOCUMENTS} <= set(models)


@pytest.mark.parametrize("model", DOCUMENTS)
def test_a_deletion_needs_nothing_but_identity(model):
    import uuid

    doc = model(id=uuid.uuid4(), source="onec", version="deleted:v", deleted=True)
    assert doc.date is None and doc.amount is None and doc.number == ""
