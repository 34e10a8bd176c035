"""The request bodies of the 1С HTTP service as the emulator validates them.

A second reading of http_service.openapi.yaml (the contract); the schemathesis test
(tests/connectors/onec/test_emulator_contract.py) keeps the two in step. Strict: 1С's
service gets JSON from one client, ours, so anything off the contract is a bug to report
(400), not something to guess about.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
KEY_PATTERN = r"^[A-Za-z0-9._:~-]{1,200}$"

Guid = Annotated[str, Field(pattern=GUID_PATTERN)]
OneCDate = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
        r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
    ),
]
Money = Annotated[float, Field(ge=0, le=1e12)]
Text = Annotated[str, Field(max_length=1024)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
SourceId = Annotated[str, Field(min_length=1, max_length=100)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("date", "occurred_at", check_fields=False)
    @classmethod
    def _real_date(cls, value: str) -> str:
        # The pattern admits 2024-02-31T00:00:00; 1С does not.
        datetime.fromisoformat(value)
        return value


class GoodsLine(_Body):
    """One goods line (Товары)."""

    product_id: Guid
    characteristic_id: Guid | None = None
    unit_id: Guid | None = None
    quantity: float = Field(gt=0, le=1e9)
    price: Money
    amount: Money | None = None
    vat_rate: str | None = Field(None, max_length=20)


Lines = Annotated[list[GoodsLine], Field(min_length=1, max_length=500)]


class DeliveryStatus(_Body):
    """What became of a delivery, to record on its order or shipment."""

    status: Literal["delivered", "failed", "cancelled"]
    order_id: Guid | None = None
    shipment_id: Guid | None = None
    occurred_at: OneCDate
    courier_id: Guid | None = None
    comment: Text | None = None
    collected_amount: Money | None = None
    currency: Currency = "RUB"

    @model_validator(mode="after")
    def _names_a_document(self) -> DeliveryStatus:
        if self.order_id is None and self.shipment_id is None:
            raise ValueError("order_id or shipment_id is required")
        return self


class _NewDocument(_Body):
    source_id: SourceId
    date: OneCDate
    ref_key: Guid | None = None
    organization_id: Guid | None = None
    currency: Currency = "RUB"
    comment: Text | None = None


class InstantOrder(_NewDocument):
    """An order a courier took: becomes a ЗаказКлиента or a РеализацияТоваровУслуг."""

    document_type: Literal["order", "shipment"]
    counterparty_id: Guid
    warehouse_id: Guid | None = None
    courier_id: Guid | None = None
    amount: Money | None = None
    delivery_address: Text | None = None
    lines: Lines
    post: bool = False


class Return(_NewDocument):
    """A return of goods from a customer."""

    counterparty_id: Guid
    shipment_id: Guid | None = None
    order_id: Guid | None = None
    warehouse_id: Guid | None = None
    courier_id: Guid | None = None
    amount: Money | None = None
    lines: Lines
    post: bool = False


class PaymentLine(_Body):
    """One line of a cash document's payment breakdown."""

    amount: Money
    order_id: Guid | None = None
    shipment_id: Guid | None = None
    contract_id: Guid | None = None


class CashDocument(_NewDocument):
    """A ПКО (cash_receipt) or РКО (cash_expense)."""

    kind: Literal["cash_receipt", "cash_expense"]
    cash_desk_id: Guid | None = None
    counterparty_id: Guid | None = None
    employee_id: Guid | None = None
    base_document_id: Guid | None = None
    amount: float = Field(gt=0, le=1e12)
    basis: Text | None = None
    payments: list[PaymentLine] = Field(default_factory=list, max_length=500)
    post: bool = True


class AdvanceReport(_NewDocument):
    """An advance report of a courier."""

    employee_id: Guid
    purpose: Text | None = None
    amount: Money | None = None
    advance_ids: list[Guid] = Field(default_factory=list, max_length=100)
    lines: list[GoodsLine] = Field(default_factory=list, max_length=500)
    post: bool = True


def problems(exc: ValidationError) -> list[dict[str, Any]]:
    """``details.errors`` of a 400: where and what, without echoing the input."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
