"""Canonical shipment: a sale of goods and services (1С РеализацияТоваровУслуг). 1С owns it."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.document import AccountingDocument
from mmstream.models.lines import GoodsLine


class Shipment(AccountingDocument):
    """A shipment (sale) with its lines: what leaves the warehouse for a customer."""

    ENTITY: ClassVar[str] = "shipment"

    counterparty_id: UUID | None = Field(
        None, description="buyer (Контрагент)", json_schema_extra={"ref": "counterparty"}
    )
    partner_id: UUID | None = Field(
        None,
        description="buyer as a partner (УТ 11 Партнер)",
        json_schema_extra={"ref": "counterparty"},
    )
    contract_id: UUID | None = Field(
        None, description="1С contract (Договор, ДоговорКонтрагента) Ref_Key"
    )
    warehouse_id: UUID | None = Field(
        None, description="warehouse shipped from (Склад)", json_schema_extra={"ref": "warehouse"}
    )
    order_id: UUID | None = Field(
        None,
        description="customer order shipped (УТ 11 ЗаказКлиента, УТ 10.3 Сделка)",
        json_schema_extra={"ref": "customer_order"},
    )
    status: str = Field("", description="shipment status as 1С names it (УТ 11 Статус)")
    delivery_address: str = Field("", description="delivery address as text (АдресДоставки)")
    amount_includes_vat: bool | None = Field(
        None, description="prices include VAT (ЦенаВключаетНДС, СуммаВключаетНДС)"
    )
    lines: tuple[GoodsLine, ...] = Field((), description="goods and services (Товары, Услуги)")
