"""Canonical warehouse (1С Склады). 1С owns it."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical


class Warehouse(Canonical):
    """A warehouse or store couriers load from (1С Склады)."""

    ENTITY: ClassVar[str] = "warehouse"

    code: str = Field("", description="1С Code")
    name: str = Field(description="name (1С Description)")
    parent_id: UUID | None = Field(
        None, description="warehouse group", json_schema_extra={"ref": "warehouse"}
    )
    is_folder: bool = Field(False, description="a group of warehouses, not a warehouse")
    address: str = Field("", description="address as text, when 1С has one")
    kind: str = Field(
        "",
        description="warehouse kind as 1С names it (УТ 11 ТипСклада, УТ 10.3 "
        "ВидСклада: Оптовый, Розничный, …)",
    )
    retail_price_type_id: UUID | None = Field(
        None,
        description="price type of retail sales "
        "from this warehouse (УТ 11 "
        "РозничныйВидЦены_Key, УТ 10.3 "
        "ТипЦенРозничнойТорговли_Key)",
        json_schema_extra={"ref": "price_type"},
    )
    department_id: UUID | None = Field(
        None, description="department (Подразделение_Key; departments are not a canonical entity)"
    )
    phones: tuple[str, ...] = Field((), description="phone numbers, in source order")
    comment: str = Field("", description="comment (Комментарий)")
