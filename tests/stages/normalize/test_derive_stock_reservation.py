"""Reservation arithmetic of couriers' instant orders: which reservations count (those after
1С's balance moment), the middleware's version of the stock row, and what stays available."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.stock import Stock, available, effective_order_reserve, stock_id
from stages.normalize.derive_stock_reservation import (
    Reservation,
    from_record,
    goods_by_stock,
    order_reserve,
    record,
)
from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_stock import normalize
from stages.normalize.registry import Context

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
WAREHOUSE, PRODUCT, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_only_reservations_after_the_1c_balance_count():
    rows = [Reservation(Decimal(2), at(1)), Reservation(Decimal(3), at(5))]
    assert order_reserve(rows, None) == (Decimal(5), at(5))
    assert order_reserve(rows, at(0)) == (Decimal(5), at(5))
    # 1С's balance as of minute 3 has the first order in it already.
    assert order_reserve(rows, at(3)) == (Decimal(3), at(5))
    assert order_reserve(rows, at(5)) == (Decimal(0), None)
    assert order_reserve([], at(0)) == (Decimal(0), None)


def test_an_orders_goods_are_summed_per_stock_row():
    goods = goods_by_stock(
        WAREHOUSE, [(PRODUCT, Decimal(2)), (OTHER, Decimal(0)), (PRODUCT, Decimal("1.5"))]
    )
    assert goods == {stock_id(WAREHOUSE, PRODUCT, None): (PRODUCT, Decimal("3.5"))}


def test_the_middleware_version_writes_only_its_own_fields():
    raw = record(
        warehouse_id=WAREHOUSE,
        product_id=PRODUCT,
        characteristic_id=None,
        total=Decimal(2),
        latest=at(1),
        computed_at=at(2),
    )
    [stock] = normalize(raw, {}, Context())
    assert stock == from_record(raw)
    assert stock.id == stock_id(WAREHOUSE, PRODUCT, None)
    assert (stock.source, stock.source_stamp, stock.order_reserve, stock.order_reserve_at) == (
        "middleware",
        at(2),
        Decimal(2),
        at(1),
    )
    assert (stock.quantity, stock.reserve, stock.as_of) == (None, None, None)
    assert Stock.owns("middleware", "order_reserve") and not Stock.owns("middleware", "quantity")
    assert Stock.owns("onec", "quantity") and not Stock.owns("onec", "order_reserve")
    # Another sum (or the same sum computed later) is another version.
    later = record(
        warehouse_id=WAREHOUSE,
        product_id=PRODUCT,
        characteristic_id=None,
        total=Decimal(2),
        latest=at(1),
        computed_at=at(3),
    )
    assert from_record(later).version != stock.version


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"order_reserve": "-1"}, "order_reserve"),
        ({"order_reserve": None}, "order_reserve"),
        ({"computed_at": None}, "computed_at"),
        ({"computed_at": "2026-12-07T10:00:00"}, "computed_at"),
        ({"product_id": None}, "product_id"),
    ],
)
def test_a_bad_reservation_record_is_unnormalizable(change, reason):
    raw = {
        **record(
            warehouse_id=WAREHOUSE,
            product_id=PRODUCT,
            characteristic_id=None,
            total=Decimal(1),
            latest=at(1),
            computed_at=at(2),
        ),
        **change,
    }
    with pytest.raises(Unnormalizable, match=reason):
        from_record(raw)


def stock(**fields) -> Stock:
    return Stock(
        id=stock_id(WAREHOUSE, PRODUCT, None),
        source="onec",
        version="v",
        warehouse_id=WAREHOUSE,
        product_id=PRODUCT,
        **fields,
    )


def test_a_reservation_holds_until_1c_answers_with_a_later_balance():
    msk = ZoneInfo("Europe/Moscow")
    before = stock(quantity=Decimal(10), reserve=Decimal(1), as_of=at(0).astimezone(msk))
    assert available(before) == Decimal(9)
    reserved = before.model_copy(update={"order_reserve": Decimal(2), "order_reserve_at": at(1)})
    assert (effective_order_reserve(reserved), available(reserved)) == (Decimal(2), Decimal(7))
    # 1С's balance as of minute 2 (8 left: the order became its document) replaces it.
    answered = reserved.model_copy(update={"quantity": Decimal(8), "as_of": at(2).astimezone(msk)})
    assert (effective_order_reserve(answered), available(answered)) == (Decimal(0), Decimal(7))
    # No 1С moment (CommerceML): the reservation holds.
    unknown = reserved.model_copy(update={"as_of": None})
    assert effective_order_reserve(unknown) == Decimal(2)
    assert available(stock()) == Decimal(0)
