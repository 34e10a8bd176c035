"""Canonical stock: the quantity of a product (variant) on one warehouse, as of a moment.

Sources: CommerceML offers (``Предложение/Количество`` — the total over every warehouse —,
``Склад @ИдСклада @КоличествоНаСкладе`` of 2.04–2.07 and ``Остатки/Остаток[/Склад]`` of 2.08+)
and 1С accumulation-register balances (``ТоварыНаСкладах`` and the like: ``Номенклатура_Key``,
``Склад_Key``, ``Характеристика_Key``, ``…Balance``). The canonical id is
:func:`~mmstream.models.base.derived_id` over warehouse, product and characteristic — the
moment is not part of it: a later balance is a newer version of the same stock row.

The warehouse is a reference, not a 1С-only notion, so a separate warehouse system can write
the same rows later with its own ``source``. Couriers' "walking warehouses" are warehouses;
which Bitrix24 user a warehouse belongs to is a property of the warehouse (a later
``Warehouse.courier_id``; today the settings' ``stock.walking_warehouses`` map), not of each
stock row, so no courier field here. 1С owns every field but the couriers' reservation.

Reservation (flow 3): an instant order a courier takes in Bitrix24 reserves its goods from
the courier's walking warehouse before 1С has heard of it. 1С's balance fields (quantity,
reserve, as_of) stay 1С's; the middleware writes ``order_reserve`` (the sum of such
reservations made after ``as_of``) and ``order_reserve_at`` (the latest of them). A 1С balance
as of a later moment has the order in it already, so it replaces them:
:func:`effective_order_reserve` counts ``order_reserve`` only while ``order_reserve_at`` is
after ``as_of``, and :func:`available` is quantity − reserve − that. A separate warehouse
system would be one more source writing these rows (a connector and a normalizer), not a
change of this entity.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical, derived_id

# How 1С writes "no characteristic" and how the total over all warehouses is named in the id.
_NO_CHARACTERISTIC = "00000000-0000-0000-0000-000000000000"
_ALL_WAREHOUSES = "*"


def stock_id(warehouse_id: UUID | None, product_id: UUID, characteristic_id: UUID | None) -> UUID:
    """The canonical id of the stock of product (variant) on a warehouse (None: the total over
    all warehouses, CommerceML ``Количество``); the same for CommerceML and 1С registers."""
    warehouse = str(warehouse_id) if warehouse_id else _ALL_WAREHOUSES
    characteristic = str(characteristic_id) if characteristic_id else _NO_CHARACTERISTIC
    return derived_id("stock", "onec", f"{warehouse}|{product_id}|{characteristic}")


class Stock(Canonical):
    """How much of a product (variant) a warehouse holds (and keeps reserved)."""

    ENTITY: ClassVar[str] = "stock"
    FIELD_OWNERS: ClassVar[dict[str, str]] = {
        "order_reserve": "middleware",
        "order_reserve_at": "middleware",
    }

    warehouse_id: UUID | None = Field(
        None,
        description="the warehouse (Склад_Key, CommerceML "
        "ИдСклада / Склад/Ид); none for the "
        "total over all warehouses",
        json_schema_extra={"ref": "warehouse"},
    )
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
    quantity: Decimal | None = Field(
        None,
        description="quantity on hand in base units (may be negative: 1С allows negative balances)",
    )
    reserve: Decimal | None = Field(
        None,
        description="quantity reserved from this stock "
        "(ВРезервеСоСкладаBalance); none where "
        "the source does not say",
    )
    as_of: datetime | None = Field(
        None,
        description="the moment the balance is for (register "
        "Period); none where the source does not "
        "say (CommerceML offers)",
    )
    warehouse_name: str = Field(
        "",
        description="warehouse name as the source wrote it (CommerceML Склады/Склад/Наименование)",
    )
    order_reserve: Decimal | None = Field(
        None,
        description="quantity couriers' instant orders "
        "reserved after as_of (middleware; "
        "void once 1С answers with a later "
        "balance)",
    )
    order_reserve_at: datetime | None = Field(
        None, description="when the latest of those reservations was made"
    )


def effective_order_reserve(stock: Stock) -> Decimal:
    """What the couriers' orders still hold of ``stock``: ``order_reserve`` while it is newer
    than 1С's balance (``as_of``), else 0 — 1С's later balance has those orders in it."""
    if not stock.order_reserve or stock.order_reserve_at is None:
        return Decimal(0)
    if stock.as_of is not None and stock.as_of >= stock.order_reserve_at:
        return Decimal(0)
    return stock.order_reserve


def available(stock: Stock) -> Decimal:
    """Quantity free to sell: on hand − 1С's reserve − the couriers' pending reservations."""
    return (
        (stock.quantity or Decimal(0))
        - (stock.reserve or Decimal(0))
        - effective_order_reserve(stock)
    )
