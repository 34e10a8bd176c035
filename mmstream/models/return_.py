"""Canonical return of goods from a customer (1С ВозвратТоваровОтКлиента in УТ 11,
ВозвратТоваровОтПокупателя in УТ 10.3), with its lines.

A return is started either in 1С (its id is the document's Ref_Key) or by a courier in
Bitrix24 (a deal in the returns funnel or a smart-process item: the id is derived from the
record key, ``deal:42`` / ``item:140:42``, unless the record carries our canonical id; the
middleware gives the 1С document it creates that same Ref_Key). 1С owns the document (every
field it inherits, the lines, the deletion); Bitrix24 owns what the courier reported
(``courier_*``, ``title``); the middleware owns the return status.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.document import AccountingDocument
from mmstream.models.lines import GoodsLine, money

_BITRIX24 = (
    "title",
    "courier_id",
    "courier_stage",
    "courier_comment",
    "courier_amount",
    "courier_currency",
    "courier_counterparty_id",
    "courier_shipment_id",
    "reported_at",
)


class Return(AccountingDocument):
    """A return of goods from a customer: the 1С document and what the courier reported."""

    ENTITY: ClassVar[str] = "return"
    FIELD_OWNERS: ClassVar[dict[str, str]] = {
        "status": "middleware",
        **{name: "bitrix24" for name in _BITRIX24},
    }

    counterparty_id: UUID | None = Field(
        None,
        description="customer returning (Контрагент)",
        json_schema_extra={"ref": "counterparty"},
    )
    partner_id: UUID | None = Field(
        None,
        description="customer as a partner (УТ 11 Партнер)",
        json_schema_extra={"ref": "counterparty"},
    )
    contract_id: UUID | None = Field(
        None, description="1С contract (Договор, ДоговорКонтрагента) Ref_Key"
    )
    warehouse_id: UUID | None = Field(
        None,
        description="warehouse the goods return to (Склад)",
        json_schema_extra={"ref": "warehouse"},
    )
    shipment_id: UUID | None = Field(
        None,
        description="shipment being returned (ДокументРеализации)",
        json_schema_extra={"ref": "shipment"},
    )
    order_id: UUID | None = Field(
        None,
        description="customer order of the returned goods (УТ 11 ЗаказКлиента, УТ 10.3 Сделка)",
        json_schema_extra={"ref": "customer_order"},
    )
    amount_includes_vat: bool | None = Field(
        None, description="prices include VAT (ЦенаВключаетНДС, СуммаВключаетНДС)"
    )
    lines: tuple[GoodsLine, ...] = Field((), description="goods returned (Товары)")
    status: str = Field(
        "new",
        description="return status the middleware keeps: new, "
        "in_progress, recorded, rejected, cancelled",
    )
    title: str = Field("", description="title of the courier's deal or item in Bitrix24")
    courier_id: UUID | None = Field(
        None,
        description="courier who took the return (ASSIGNED_BY_ID / assignedById)",
        json_schema_extra={"ref": "employee"},
    )
    courier_stage: str = Field("", description="stage in Bitrix24 (STAGE_ID / stageId)")
    courier_comment: str = Field("", description="the courier's comment")
    courier_amount: Decimal | None = money(
        "amount the courier reports returned (OPPORTUNITY / opportunity)"
    )
    courier_currency: str = Field("", description="currency of courier_amount (e.g. RUB)")
    courier_counterparty_id: UUID | None = Field(
        None,
        description="customer as the courier named them (the company, else the contact)",
        json_schema_extra={"ref": "counterparty"},
    )
    courier_shipment_id: UUID | None = Field(
        None,
        description="shipment the courier says is returned (a portal field holding the "
        "1С GUID, settings *_fields 'shipment_id')",
        json_schema_extra={"ref": "shipment"},
    )
    reported_at: datetime | None = Field(
        None, description="when the courier started the return in Bitrix24"
    )
