"""CashReceipt carries what an SLA check needs."""

from __future__ import annotations

from mmstream.models.cash_receipt import CashReceipt

SLA_FIELDS = {
    "date",
    "amount",
    "employee_id",
    "base_document_id",
    "order_id",
    "shipment_id",
    "posted",
}


def test_entity_and_sla_fields():
    assert CashReceipt.ENTITY == "cash_receipt"
    assert SLA_FIELDS <= set(CashReceipt.model_fields)
    assert CashReceipt.model_fields["employee_id"].json_schema_extra == {"ref": "employee"}
