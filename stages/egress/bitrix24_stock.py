"""Stock 1С -> Bitrix24 store balances, and couriers' reservations from walking warehouses.

**Which Bitrix24 method changes a store balance.** ``catalog.storeproduct.*`` is read-only
over REST: the portal documents ``get``, ``getFields`` and ``list`` only
(dev.1c-bitrix.ru/rest_help/catalog/storeproduct). With inventory management on (the only
mode with per-store balances) a balance changes when a warehouse document is conducted:
``catalog.document.add`` (``docType`` S, store adjustment / оприходование, to raise it; D,
deduct / списание, to lower it), ``catalog.document.element.add`` (``docId``,
``elementId`` = product, ``amount``, ``storeTo`` / ``storeFrom``) and
``catalog.document.conduct`` (rest_help/catalog/catalogdocument). ``catalog.product.update``
with ``quantity`` sets only the product's total, and only where inventory management is
off; it cannot say which store holds it, so it is not used.

:class:`StockAction` therefore writes a 1С balance as the *difference* to what the store
holds: ``catalog.storeproduct.list`` (store, product) for the current amount, then one
S or D document of ``target − current``, conducted. Reading first makes a retry after a
timeout safe: when the first attempt's document was conducted the difference is 0 and
nothing is written. (A crash between ``document.add`` and ``conduct`` leaves an unconducted
draft, which moves no balance; the retry writes its own document.) A negative 1С balance
is written as 0: a store cannot go below zero in Bitrix24.

**Rate budget: coalescing.** Stock changes often (every sale moves it) and each write
costs four calls of the portal's ~2 calls/s. Only the latest balance of a stock row is
written: before any call the action compares the change's version with the row's version
in the ``stock`` table; an older change is skipped — a newer one is already stored, and the
outbox has published it behind this one on the same partition, so it will be written. A
burst of changes of one balance (or changes that waited behind a dependency on the delayed
path) ends in one write of the final value; each skipped change counts in
``mm_egress_deliveries_total{outcome="superseded"}``. Bitrix24's own reservations (deals with goods)
are kept by the portal; what is written is the quantity on hand.

Not written: the total over all warehouses (``warehouse_id`` null: CommerceML
``Количество`` — Bitrix24 has no such store), product variants (``characteristic_id``: the
product flow does not create variants, as for prices), rows the middleware alone wrote (no
quantity yet). The warehouse and product must be in Bitrix24: :class:`DependencyPending`
until their flows have delivered them.

**Reservations (flow 3).** :class:`InstantOrderReservation` reserves the goods of a courier's
instant order (a deal in the courier funnel, assigned to the courier) from the courier's
walking warehouse (settings ``stock.walking_warehouses``). It keeps one row per order and
stock row in ``stock_reservation`` (idempotent per order), recomputes the sum of the
reservations made after 1С's balance moment and publishes it on ``raw.onec.stock`` as the
middleware's version of the stock row (stages/normalize/derive_stock_reservation.py): the
entity sink merges it like any source, so ``stock.order_reserve`` goes up and
:func:`mmstream.models.stock.available` down, until 1С sends a balance as of a later moment
(its documents then hold the order). A lost deal releases its reservation. The stock entity
stays open to a separate warehouse system: it would be one more connector writing the same
rows, not a change here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import text

from mmstream.errors import InvalidRecord
from mmstream.metrics import EGRESS_DELIVERIES
from mmstream.models.base import derived_id
from mmstream.retry import retry_forever
from stages.egress.actions import Targets
from stages.egress.courier_documents import deal_id
from stages.egress.delivery import Change, Crosswalk, DependencyPending
from stages.egress.events import event_record, publish
from stages.normalize import derive_stock_reservation as reservation
from stages.normalize.bitrix24_courier import stage_outcome

log = logging.getLogger(__name__)

TARGET = "bitrix24"
#: The egress outcome counted for a stock change skipped because a newer one is stored.
SUPERSEDED = "superseded"
STOCK_TOPIC = "raw.onec.stock"
#: Document types: raise a balance (store adjustment), lower it (deduct).
RAISE, LOWER = "S", "D"


# -- pure decisions -----------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceWrite:
    """The warehouse document that moves a store balance to its target."""

    doc_type: str
    amount: Decimal
    #: ``storeTo`` for an adjustment, ``storeFrom`` for a deduct.
    store_field: str


def balance_write(current: Decimal, target: Decimal) -> BalanceWrite | None:
    """The document that turns ``current`` into ``target`` (a negative target is 0: no
    Bitrix24 store goes below zero); None when they are equal."""
    delta = max(target, Decimal(0)) - current
    if delta > 0:
        return BalanceWrite(RAISE, delta, "storeTo")
    if delta < 0:
        return BalanceWrite(LOWER, -delta, "storeFrom")
    return None


def target_quantity(payload: dict[str, Any]) -> Decimal | None:
    """The balance to write: 0 for a deleted row (the balance vanished from 1С's Balance
    table: nothing left), the quantity, or None when the row has none yet (only a
    reservation was written)."""
    if payload.get("deleted"):
        return Decimal(0)
    raw = payload.get("quantity")
    if raw is None:
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"quantity {raw!r} is not a number") from None


def is_latest(change_version: str, stored_version: str | None) -> bool:
    """Whether the change is the stock row's latest version (else a newer one is stored and
    will be delivered after it: this one is skipped, coalesced into that one). A row not
    found counts as latest: nothing newer is known."""
    return stored_version is None or stored_version == change_version


def walking_warehouse(
    courier_id: str | None, walking: dict[str, int], known_user: str | None
) -> str | None:
    """The walking warehouse of an order's courier. ``courier_id`` is the canonical employee
    (a Bitrix24 user derived from ``user:<id>``, or a 1С employee the crosswalk maps to
    ``known_user`` = ``user:<id>``); ``walking``: warehouse GUID -> Bitrix24 user id."""
    if not courier_id:
        return None
    for warehouse, user in walking.items():
        if str(derived_id("employee", "bitrix24", f"user:{user}")) == str(courier_id):
            return warehouse
        if known_user == f"user:{user}":
            return warehouse
    return None


def _number(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else 0))
    except InvalidOperation:
        return Decimal(0)


def _ident(answer: Any, key: str) -> int:
    # The catalog family answers {"<key>": {"id": …}}; older portals answer the bare id.
    if isinstance(answer, dict):
        answer = (answer.get(key) or {}).get("id")
    return int(answer)


# -- actions ------------------------------------------------------------------------------

_STORED_VERSION = text("SELECT version FROM stock WHERE id = CAST(:id AS uuid)")


class StockAction:
    """A stock balance as the balance of a Bitrix24 store (module docstring)."""

    target: ClassVar[str] = TARGET
    entity: ClassVar[str] = "stock"

    def __init__(self, targets: Targets) -> None:
        self.client = targets.bitrix24

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Write the balance when this change is the latest; ``<store>:<product>``."""
        payload = change.payload
        if payload.get("characteristic_id") or not payload.get("warehouse_id"):
            return None
        target = target_quantity(payload)
        if target is None:
            return None
        stored = await self._stored_version(xwalk, change.entity_id)
        if not is_latest(str(payload.get("version") or ""), stored):
            # Counted besides the delivery's own outcome (the change still ends "delivered":
            # nothing is left to do for it), as "retried" is: how many writes coalescing saved.
            EGRESS_DELIVERIES.labels(TARGET, self.entity, SUPERSEDED).inc()
            log.info(
                "stock change coalesced into a newer one",
                extra={
                    "entity_id": change.entity_id,
                    "version": payload.get("version"),
                    "stored_version": stored,
                },
            )
            return None
        store_id = await xwalk.require(
            "warehouse", TARGET, payload["warehouse_id"], "stock on a warehouse"
        )
        product_id = await xwalk.require(
            "product", TARGET, payload.get("product_id"), "stock of a product"
        )
        if store_id is None or product_id is None:  # the warehouse was checked above
            raise InvalidRecord("a stock balance without product_id names no store product")
        store, product = int(store_id), int(product_id)
        found = await self.client.call(
            "catalog.storeproduct.list",
            {
                "select": ["id", "storeId", "productId", "amount"],
                "filter": {"storeId": store, "productId": product},
            },
        )
        rows = (found or {}).get("storeProducts") or []
        current = _number(rows[0].get("amount")) if rows else Decimal(0)
        write = balance_write(current, target)
        if write is not None:
            await self._conduct(write, store, product, change)
        return f"{store}:{product}"

    async def _conduct(self, write: BalanceWrite, store: int, product: int, change: Change) -> None:
        fields: dict[str, Any] = {
            "docType": write.doc_type,
            "title": f"mmstream stock {change.entity_id}",
            "commentary": f"1С balance {change.payload.get('version')}",
        }
        if write.doc_type == RAISE:
            fields["currency"] = "RUB"  # an adjustment is priced; the balance is what matters
        doc = _ident(await self.client.call("catalog.document.add", {"fields": fields}), "document")
        await self.client.call(
            "catalog.document.element.add",
            {
                "fields": {
                    "docId": doc,
                    "elementId": product,
                    "amount": float(write.amount),
                    write.store_field: store,
                    "purchasingPrice": 0,
                }
            },
        )
        await self.client.call("catalog.document.conduct", {"id": doc})
        log.info(
            "store balance written",
            extra={
                "entity_id": change.entity_id,
                "store": store,
                "product": product,
                "doc_type": write.doc_type,
                "amount": str(write.amount),
            },
        )

    @staticmethod
    async def _stored_version(xwalk: Crosswalk, ident: str) -> str | None:
        async def read() -> str | None:
            async with xwalk.engine.connect() as conn:
                return await conn.scalar(_STORED_VERSION, {"id": ident})

        return await retry_forever(read, stage="egress", what="stock row read", entity="stock")


_RESERVE = text(
    "INSERT INTO stock_reservation (order_id, stock_id, warehouse_id, product_id, quantity) "
    "VALUES (CAST(:order AS uuid), CAST(:stock AS uuid), CAST(:warehouse AS uuid), "
    "CAST(:product AS uuid), :quantity) ON CONFLICT (order_id, stock_id) DO UPDATE SET "
    # A changed quantity is a new reservation: its moment is now.
    "quantity = excluded.quantity, reserved_at = clock_timestamp() "
    "WHERE stock_reservation.quantity <> excluded.quantity"
)
_RELEASE = text(
    "DELETE FROM stock_reservation WHERE order_id = CAST(:order AS uuid) "
    "AND NOT (stock_id = ANY(CAST(:keep AS uuid[]))) "
    "RETURNING stock_id, warehouse_id, product_id"
)
_ROWS = text(
    "SELECT quantity, reserved_at FROM stock_reservation WHERE stock_id = CAST(:stock AS uuid)"
)
_AS_OF = text(
    "SELECT as_of, clock_timestamp() FROM (SELECT 1) one LEFT JOIN stock "
    "ON stock.id = CAST(:stock AS uuid)"
)


class InstantOrderReservation:
    """A courier's instant order reserves its goods from the courier's walking warehouse
    (module docstring). The object it "delivers" to is our own stock row."""

    target: ClassVar[str] = "stock"
    entity: ClassVar[str] = "instant_order"

    def __init__(self, targets: Targets) -> None:
        self.bitrix24 = targets.bitrix24
        self.producer = targets.producer
        self.walking = targets.settings.stock.walking_warehouses
        self.topic = targets.settings.topic(STOCK_TOPIC)

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Reserve (or release) the order's goods; the warehouse reserved from."""
        payload = change.payload
        deal = deal_id(payload)
        if deal is None or not self.walking:
            return None
        courier = payload.get("courier_id")
        known = await xwalk.external_id("employee", TARGET, courier) if courier else None
        warehouse = walking_warehouse(courier, self.walking, known)
        # A lost or deleted deal, or one no longer assigned to a courier with a walking
        # warehouse, holds nothing: whatever it reserved before is released.
        released = (
            bool(payload.get("deleted"))
            or warehouse is None
            or stage_outcome(str(payload.get("stage") or "")) == "failure"
        )
        goods: dict[UUID, tuple[UUID, Decimal]] = {}
        if not released and warehouse is not None:
            goods = reservation.goods_by_stock(UUID(warehouse), await self._goods(deal, xwalk))
        touched = await self._store(xwalk, change.entity_id, warehouse, goods)
        for stock, (where, product) in touched.items():
            await self._publish(xwalk, stock, where, product)
        return warehouse

    async def _goods(self, deal: int, xwalk: Crosswalk) -> list[tuple[UUID, Decimal]]:
        rows = await self.bitrix24.call("crm.deal.productrows.get", {"id": deal}) or []
        out = []
        for row in rows:
            quantity = _number(row.get("QUANTITY"))
            if quantity <= 0:
                continue  # a placeholder row reserves nothing
            number = int(row.get("PRODUCT_ID") or 0)
            canonical = await xwalk.canonical_id("product", TARGET, str(number))
            if canonical is None:
                raise DependencyPending(
                    f"deal {deal}: product {number} ({row.get('PRODUCT_NAME') or 'no name'}) is "
                    "not a product from 1С: it has no stock to reserve from"
                )
            out.append((UUID(canonical), quantity))
        return out

    @staticmethod
    async def _store(
        xwalk: Crosswalk, order: str, warehouse: str | None, goods: dict[UUID, tuple[UUID, Decimal]]
    ) -> dict[str, tuple[str, str]]:
        """Write the order's reservations (dropping those it no longer has); the stock rows
        touched -> (warehouse, product)."""

        async def write() -> dict[str, tuple[str, str]]:
            touched: dict[str, tuple[str, str]] = {}
            async with xwalk.engine.begin() as conn:
                for stock, (product, quantity) in goods.items():
                    await conn.execute(
                        _RESERVE,
                        {
                            "order": order,
                            "stock": str(stock),
                            "warehouse": warehouse,
                            "product": str(product),
                            "quantity": quantity,
                        },
                    )
                    touched[str(stock)] = (str(warehouse), str(product))
                gone = await conn.execute(
                    _RELEASE, {"order": order, "keep": [str(s) for s in goods]}
                )
                for stock, where, product in gone.all():
                    touched[str(stock)] = (str(where), str(product))
            return touched

        return await retry_forever(write, stage="egress", what="stock reservation", entity="stock")

    async def _publish(self, xwalk: Crosswalk, stock: str, warehouse: str, product: str) -> None:
        async def read() -> tuple[datetime | None, datetime, list[reservation.Reservation]]:
            async with xwalk.engine.connect() as conn:
                as_of, now = (await conn.execute(_AS_OF, {"stock": stock})).one()
                rows = (await conn.execute(_ROWS, {"stock": stock})).all()
            return as_of, now, [reservation.Reservation(Decimal(q), at) for q, at in rows]

        as_of, now, rows = await retry_forever(
            read, stage="egress", what="stock reservation read", entity="stock"
        )
        total, latest = reservation.order_reserve(rows, as_of)
        value = reservation.record(
            warehouse_id=UUID(warehouse),
            product_id=UUID(product),
            characteristic_id=None,
            total=total,
            latest=latest,
            computed_at=now,
        )
        await publish(
            self.producer,
            event_record(
                self.topic, "stock.reservation", "stock", stock, value, dedupe=now.isoformat()
            ),
            "stock",
        )
        log.info(
            "stock reserved for couriers' orders",
            extra={"entity_id": stock, "order_reserve": str(total), "warehouse": warehouse},
        )
