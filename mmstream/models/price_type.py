"""Canonical price type (1С ВидыЦен in УТ 11, ТипыЦенНоменклатуры in УТ 10.3, CommerceML
ТипыЦен). 1С owns it."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical


class PriceType(Canonical):
    """A kind of price (retail, wholesale, …) prices are set for."""

    ENTITY: ClassVar[str] = "price_type"

    code: str = Field("", description="1С Code")
    name: str = Field(description="name (1С Description, CommerceML Наименование)")
    currency: str = Field(
        "",
        description="currency as text where the source names it so "
        "(CommerceML Валюта, e.g. 'руб', 'RUB')",
    )
    currency_id: UUID | None = Field(
        None,
        description="currency of the price (ВалютаЦены_Key: "
        "1С Валюты Ref_Key; not a canonical entity)",
    )
    includes_vat: bool | None = Field(None, description="prices include VAT (ЦенаВключаетНДС)")
    pricing_method: str = Field(
        "",
        description="how 1С sets the prices: УТ 11 "
        "СпособЗаданияЦены as 1С names it; УТ 10.3 "
        "'Рассчитывается' or 'Вручную'",
    )
    base_price_type_id: UUID | None = Field(
        None,
        description="price type it is calculated from (УТ 10.3 БазовыйТипЦен_Key)",
        json_schema_extra={"ref": "price_type"},
    )
    markup_percent: Decimal | None = Field(
        None,
        description="markup (+) or discount (-) over "
        "the base type, percent (УТ 10.3 "
        "ПроцентСкидкиНаценки)",
    )
    for_sale: bool | None = Field(
        None, description="used when selling (УТ 11 ИспользоватьПриПродаже)"
    )
    comment: str = Field("", description="comment (Комментарий)")
