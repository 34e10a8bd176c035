"""Tabular-section lines shared by the accounting documents, and the money field helper.

Goods lines (Товары, Услуги) have one shape in orders, shipments and advance reports;
payment lines (РасшифровкаПлатежа) one shape in cash receipts and expenses. Lines are plain
frozen models, not entities: they live inside their document's version.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import ConfigDict, Field

from mmstream.models.bounds import Bounded

MONEY_SCALE = 2
"""1С sums are Number(15, 2); prices and quantities keep the default Avro scale (4)."""


def money(description: str) -> Any:
    """An optional money field (Decimal, scale 2): ``amount: Decimal | None = money("...")``."""
    return Field(None, description=description, json_schema_extra={"scale": MONEY_SCALE})


class GoodsLine(Bounded):
    """One line of a goods or services tabular section (Товары, Услуги)."""

    model_config = ConfigDict(frozen=True)

    section: str = Field(description="1С tabular section the line came from (Товары, Услуги, ...)")
    line_number: int = Field(description="1С LineNumber within its section (from 1)")
    product_id: UUID | None = Field(
        None, description="product (Номенклатура)", json_schema_extra={"ref": "product"}
    )
    characteristic_id: UUID | None = Field(
        None, description="1С product characteristic (Характеристика) Ref_Key, when used"
    )
    content: str = Field(
        "", description="line text: Содержание of a service, the item name in CommerceML"
    )
    unit_id: UUID | None = Field(
        None, description="1С unit or packaging (ЕдиницаИзмерения, Упаковка) Ref_Key"
    )
    quantity: Decimal | None = Field(None, description="quantity in base units (Количество)")
    price: Decimal | None = Field(
        None, description="price per unit in the document currency (Цена)"
    )
    amount: Decimal | None = money("line amount in the document currency (Сумма)")
    vat_rate: str = Field(
        "",
        description="VAT rate as 1С names it (НДС20, БезНДС, ...); "
        "empty when the base sends a reference instead",
    )
    vat_rate_id: UUID | None = Field(
        None, description="1С СтавкиНДС Ref_Key (УТ 11.5+), when the rate is a reference"
    )
    vat_percent: Decimal | None = Field(
        None,
        description="VAT percent read from the rate name (НДС20 -> 20, НДС0 -> 0); "
        "none for БезНДС or a rate given only as a reference",
        json_schema_extra={"scale": MONEY_SCALE},
    )
    vat_amount: Decimal | None = money("VAT in the line amount (СуммаНДС)")
    warehouse_id: UUID | None = Field(
        None,
        description="warehouse of this line, when it differs by line (УТ 11 Склад)",
        json_schema_extra={"ref": "warehouse"},
    )
    order_id: UUID | None = Field(
        None,
        description="customer order of this line (УТ 11 ЗаказКлиента in a shipment line)",
        json_schema_extra={"ref": "customer_order"},
    )
    cancelled: bool = Field(False, description="the line is cancelled (УТ 11 Отменено)")


class PaymentLine(Bounded):
    """One line of a cash document's payment breakdown (РасшифровкаПлатежа)."""

    model_config = ConfigDict(frozen=True)

    line_number: int = Field(description="1С LineNumber (from 1)")
    order_id: UUID | None = Field(
        None,
        description="customer order paid by this line",
        json_schema_extra={"ref": "customer_order"},
    )
    shipment_id: UUID | None = Field(
        None, description="shipment paid by this line", json_schema_extra={"ref": "shipment"}
    )
    base_document_id: UUID | None = Field(
        None,
        description="the settlement document of the line, whatever its kind "
        "(Заказ, Сделка, ДокументРасчетовСКонтрагентом)",
    )
    base_document_kind: str = Field(
        "", description="1С type of base_document_id, e.g. Document_ЗаказКлиента"
    )
    counterparty_id: UUID | None = Field(
        None,
        description="partner of the line (УТ 11 Партнер)",
        json_schema_extra={"ref": "counterparty"},
    )
    contract_id: UUID | None = Field(
        None, description="1С contract (Договор, ДоговорКонтрагента) Ref_Key"
    )
    amount: Decimal | None = money(
        "amount of the line in the document currency (Сумма, СуммаПлатежа)"
    )
