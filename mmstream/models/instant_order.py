"""Canonical instant order: a sale a courier starts on the spot, as a Bitrix24 deal.

Born in Bitrix24 (a deal in the instant-order funnel), so its id is derived from the deal
(``deal:42``) unless the deal carries our canonical id. Bitrix24 owns the order (``OWNER``);
1С owns what it made of it (the document, its number, whether it is posted); the middleware
owns the status of its path into 1С.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical
from mmstream.models.lines import money


class InstantOrder(Canonical):
    """An order a courier took in Bitrix24, and the 1С document it became."""

    ENTITY: ClassVar[str] = "instant_order"
    OWNER: ClassVar[str] = "bitrix24"
    FIELD_OWNERS: ClassVar[dict[str, str]] = {
        "status": "middleware",
        "onec_document_id": "onec",
        "onec_document_kind": "onec",
        "onec_number": "onec",
        "onec_posted": "onec",
    }

    title: str = Field("", description="deal title (TITLE)")
    stage: str = Field("", description="deal stage (STAGE_ID, e.g. C3:NEW, C3:WON)")
    closed: bool = Field(False, description="the deal is closed (CLOSED)")
    amount: Decimal | None = money("order amount (OPPORTUNITY)")
    currency: str = Field("", description="currency of amount (CURRENCY_ID, e.g. RUB)")
    counterparty_id: UUID | None = Field(
        None,
        description="customer: the deal's company, else its contact",
        json_schema_extra={"ref": "counterparty"},
    )
    courier_id: UUID | None = Field(
        None,
        description="courier responsible (ASSIGNED_BY_ID)",
        json_schema_extra={"ref": "employee"},
    )
    delivery_address: str = Field(
        "",
        description="delivery address, when the portal has a field for it (settings deal_fields)",
    )
    comment: str = Field("", description="the courier's comment (COMMENTS)")
    created_at: datetime | None = Field(
        None, description="when the courier started the order (DATE_CREATE)"
    )
    closed_at: datetime | None = Field(
        None, description="when the deal was closed (CLOSEDATE of a closed deal)"
    )
    status: str = Field(
        "new",
        description="status of its path into 1С the middleware keeps: "
        "new, sent, recorded, failed, cancelled",
    )
    onec_document_id: UUID | None = Field(
        None, description="Ref_Key of the 1С document made from it (order or shipment)"
    )
    onec_document_kind: str = Field(
        "", description="1С type of onec_document_id, e.g. Document_ЗаказКлиента"
    )
    onec_number: str = Field("", description="number of the 1С document")
    onec_posted: bool = Field(False, description="the 1С document is posted")
