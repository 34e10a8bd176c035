"""Canonical price: the current price of a product (variant) by one price type.

Sources: 1С ЦеныНоменклатуры register records (period + dimensions, no Ref_Key) and
CommerceML offers (``Предложение/Цены/Цена``). The canonical id is
:func:`~mmstream.models.base.derived_id` over product, characteristic and price type —
the period is not part of it: a record of a later period is a newer version of the same
price (``source_stamp`` = the period orders them). 1С owns every field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical, derived_id

# How 1С and the bridge's partition key write "no characteristic".
_NO_CHARACTERISTIC = "00000000-0000-0000-0000-000000000000"


def price_id(product_id: UUID, characteristic_id: UUID | str | None, price_type_id: UUID) -> UUID:
    """The canonical id of the price of product (variant) by price type; the same for 1С
    register records and CommerceML offers."""
    characteristic = characteristic_id or _NO_CHARACTERISTIC
    return derived_id("price", "onec", f"{product_id}|{characteristic}|{price_type_id}")


class Price(Canonical):
    """A product's price by one price type, valid from ``valid_from``."""

    ENTITY: ClassVar[str] = "price"

    product_id: UUID | None = Field(
        None,
        description="the product (Номенклатура_Key, CommerceML Ид before '#')",
        json_schema_extra={"ref": "product"},
    )
    characteristic_id: UUID | None = Field(
        None,
        description="product variant (Характеристика_Key"
        ", CommerceML Ид after '#'); none "
        "for the product itself",
    )
    price_type_id: UUID | None = Field(
        None,
        description="price type (ВидЦены_Key / ТипЦен_Key, CommerceML ИдТипаЦены)",
        json_schema_extra={"ref": "price_type"},
    )
    price: Decimal | None = Field(None, description="price per unit; none on a deletion record")
    currency: str = Field(
        "", description="currency as text where the source names it (CommerceML Валюта)"
    )
    currency_id: UUID | None = Field(
        None,
        description="currency (УТ 10.3 Валюта_Key: 1С Валюты "
        "Ref_Key); УТ 11 keeps it on the price type",
    )
    unit: str = Field("", description="unit as text (CommerceML Единица)")
    unit_id: UUID | None = Field(
        None, description="unit or packaging the price is for (Упаковка_Key / ЕдиницаИзмерения_Key)"
    )
    ratio: Decimal | None = Field(
        None, description="units per priced unit (CommerceML Коэффициент)"
    )
    valid_from: datetime | None = Field(
        None, description="start of validity (register Period); none from CommerceML"
    )
    recorder_id: UUID | None = Field(
        None, description="1С document that set the price (Recorder_Key, УстановкаЦенНоменклатуры)"
    )
