"""Canonical customer order (1С ЗаказКлиента in УТ 11, ЗаказПокупателя in УТ 10.3, CommerceML
orders of the exchange with a site). 1С owns it."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.document import AccountingDocument
from mmstream.models.lines import GoodsLine


class CustomerOrder(AccountingDocument):
    """A customer order with its lines; deliveries start from it."""

    ENTITY: ClassVar[str] = "customer_order"

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
        None,
        description="shipping warehouse (Склад, УТ 10.3 СкладГруппа when it is a warehouse)",
        json_schema_extra={"ref": "warehouse"},
    )
    status: str = Field(
        "", description="order status as 1С names it (УТ 11 Статус, CommerceML 'Статус заказа')"
    )
    shipment_date: datetime | None = Field(
        None, description="wanted shipment date (ЖелаемаяДатаОтгрузки, ДатаОтгрузки)"
    )
    delivery_address: str = Field("", description="delivery address as text (АдресДоставки)")
    amount_includes_vat: bool | None = Field(
        None, description="prices include VAT (ЦенаВключаетНДС, СуммаВключаетНДС)"
    )
    lines: tuple[GoodsLine, ...] = Field((), description="goods and services (Товары, Услуги)")
