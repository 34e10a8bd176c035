"""Couriers' reservations of stock (flow 3) -> the middleware's version of a stock row. Pure;
no TOPICS (the stock normalizer, stages/normalize/onec_stock.py, hands these records over).

An instant order a courier takes in Bitrix24 reserves its goods from the courier's walking
warehouse (settings ``stock.walking_warehouses``: 1С warehouse GUID -> Bitrix24 user id).
The reservation action (stages/egress/bitrix24_stock.py) keeps one row per order and stock
row (``stock_reservation``), recomputes the sum of the reservations made after 1С's balance
moment, and publishes it on ``raw.onec.stock`` as::

    {"_source": "middleware", "stock_id": …, "warehouse_id": …, "product_id": …,
     "characteristic_id": null, "order_reserve": "2", "order_reserve_at": "2026-…+00:00",
     "computed_at": "2026-…+00:00"}

Only the middleware's fields are written (``order_reserve``, ``order_reserve_at``); 1С's
quantity and reserve stay 1С's. ``computed_at`` is the stamp: a sum computed later saw at
least every reservation an earlier one saw, so the sink drops an earlier sum that arrives
after it (two orders of one courier reserved at once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from mmstream.models.stock import Stock, stock_id
from stages.normalize.oddities import Unnormalizable, decimal, ref

SOURCE = "middleware"


@dataclass(frozen=True)
class Reservation:
    """One order's reservation of one stock row."""

    quantity: Decimal
    reserved_at: datetime


def order_reserve(
    reservations: Iterable[Reservation], as_of: datetime | None
) -> tuple[Decimal, datetime | None]:
    """(sum, latest moment) of the reservations made after 1С's balance moment ``as_of``:
    1С's balance as of a later moment has those orders in it already (they became 1С
    documents), so counting them again would reserve twice."""
    live = [r for r in reservations if as_of is None or r.reserved_at > as_of]
    if not live:
        return Decimal(0), None
    return sum((r.quantity for r in live), Decimal(0)), max(r.reserved_at for r in live)


def goods_by_stock(
    warehouse_id: UUID, rows: Iterable[tuple[UUID, Decimal]]
) -> dict[UUID, tuple[UUID, Decimal]]:
    """An order's goods (product, quantity) -> stock id -> (product, total quantity) on the
    courier's warehouse: two rows of one product reserve their sum; rows with no quantity
    (Bitrix24 placeholders) reserve nothing."""
    out: dict[UUID, tuple[UUID, Decimal]] = {}
    for product, quantity in rows:
        if quantity <= 0:
            continue
        key = stock_id(warehouse_id, product, None)
        _, before = out.get(key, (product, Decimal(0)))
        out[key] = (product, before + quantity)
    return out


def record(
    *,
    warehouse_id: UUID,
    product_id: UUID,
    characteristic_id: UUID | None,
    total: Decimal,
    latest: datetime | None,
    computed_at: datetime,
) -> dict[str, Any]:
    """The raw record the reservation action publishes for one stock row."""
    return {
        "_source": SOURCE,
        "stock_id": str(stock_id(warehouse_id, product_id, characteristic_id)),
        "warehouse_id": str(warehouse_id),
        "product_id": str(product_id),
        "characteristic_id": str(characteristic_id) if characteristic_id else None,
        "order_reserve": str(total),
        "order_reserve_at": latest.isoformat() if latest else None,
        "computed_at": computed_at.isoformat(),
    }


def from_record(raw: Mapping[str, Any]) -> Stock:
    """The middleware's version of the stock row the record names."""
    warehouse = ref(raw.get("warehouse_id"), "warehouse_id")
    product = ref(raw.get("product_id"), "product_id")
    if warehouse is None or product is None:
        raise Unnormalizable("warehouse_id/product_id: a reservation names its stock row")
    characteristic = ref(raw.get("characteristic_id"), "characteristic_id")
    total = decimal(raw.get("order_reserve"), "order_reserve")
    if total is None or total < 0:
        raise Unnormalizable("order_reserve: missing or negative")
    computed = _moment(raw.get("computed_at"), "computed_at")
    if computed is None:
        raise Unnormalizable("computed_at: missing")
    latest = _moment(raw.get("order_reserve_at"), "order_reserve_at")
    digest = hashlib.sha256(f"{total}|{latest}|{computed.isoformat()}".encode()).hexdigest()[:24]
    return Stock(
        id=stock_id(warehouse, product, characteristic),
        source="middleware",
        version=f"r:{digest}",
        source_stamp=computed,
        warehouse_id=warehouse,
        product_id=product,
        characteristic_id=characteristic,
        order_reserve=total,
        order_reserve_at=latest,
    )


def _moment(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise Unnormalizable(f"{field}: not an ISO moment: {str(value)[:40]!r}") from exc
    if moment.tzinfo is None:
        raise Unnormalizable(f"{field}: needs a time zone")
    return moment
