"""Couriers' instant orders and returns (flow 3) for a 1С that takes them through its
"exchange with site" (CommerceML 2.x) instead of the HTTP service (selected per flow by
``MM_ONEC__WRITE_VIA__INSTANT_ORDER`` / ``__RETURNS`` = ``commerceml``, stages/egress/
actions.py): subclasses of :class:`~stages.egress.courier_documents.InstantOrderToOneC` /
``ReturnToOneC`` (same constructor and ``apply`` interface; their ``body`` — readiness,
customer, goods, date, money — is reused as is), but the document is queued for
``type=sale&mode=query`` instead of being written through the HTTP service.

* The document is a CommerceML ``Документ`` (connectors/commerceml/orders.py
  :func:`export_element`): ``Ид`` = our canonical id, ``Номер`` = the Bitrix24 deal id,
  ХозОперация ``Заказ товара`` / ``Возврат товара``, the customer by its 1С GUID (with the
  name and tax numbers 1С may match it by), the goods from the deal's product rows mapped
  to 1С GUIDs by the crosswalk (courier_documents' ``_lines``, through ``body``), each
  named as the 1С catalog names it (the ``product`` table; its GUID when unknown).
* It is queued under its Ид (connectors/commerceml/store.py :class:`ExportQueue`): a retry
  queues the same text, which changes nothing; a changed document replaces the queued one
  and goes to 1С again under the same Ид (1С updates its document, never makes a second).
  1С takes it at its next ``sale&mode=query``; the row is delivered only at its
  ``mode=success``.
* 1С's answer comes back in its next sale file (the document with 1С's number and posted
  flag): the bridge publishes it on ``raw.onec.exchange_result``, and the entity sink
  records the number, the posted flag and the status ``recorded`` (``cancelled`` when 1С
  marked it for deletion), which InstantOrderStatus / ReturnStatus write to the deal.

What 1С's standard exchange makes of a ``Возврат товара`` document depends on the
configuration (УТ 11 and 10.3 load ``Заказ товара`` documents as customer orders; a return
needs the exchange to be set to load returns, or a processing that does).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.commerceml.orders import (
    ORDER_OPERATION,
    RETURN_OPERATION,
    ExportDocument,
    ExportLine,
    ExportParty,
    export_fragment,
)
from connectors.commerceml.store import ExportQueue
from mmstream.retry import retry_forever
from stages.egress.courier_documents import (
    InstantOrderToOneC,
    NotACourierDeal,
    ReturnToOneC,
    _ToOneC,
    deal_id,
)
from stages.egress.delivery import Change, Crosswalk
from stages.egress.fencing import guard_write
from stages.egress.values import currency

log = logging.getLogger(__name__)

_PARTY = text("SELECT name, full_name, inn, kpp FROM counterparty WHERE id = CAST(:id AS uuid)")
_NAMES = text("SELECT id::text AS id, name FROM product WHERE id = ANY(CAST(:ids AS uuid[]))")


# -- pure mapping -------------------------------------------------------------------------


def exchange_currency(value: Any) -> str:
    """The currency as 1С's exchange with a site names it: ``руб`` for roubles (what
    1С-Битрикс sends by default and 1С's currency catalog is matched by), else the ISO code."""
    code = currency(value)
    return "руб" if code == "RUB" else code


def export_lines(lines: list[dict[str, Any]], names: dict[str, str]) -> tuple[ExportLine, ...]:
    """courier_documents' goods lines (1С GUID, quantity, price, amount) -> the document's,
    each named as the 1С catalog names its product (``names``: GUID -> name)."""
    return tuple(
        ExportLine(
            product_id=str(line["product_id"]),
            name=names.get(str(line["product_id"]), ""),
            price=Decimal(str(line["price"])),
            quantity=Decimal(str(line["quantity"])),
            amount=Decimal(str(line["amount"])),
        )
        for line in lines
    )


def document_amount(value: Any, lines: tuple[ExportLine, ...]) -> Decimal:
    """The document's amount: the one the courier gave, else the sum of the lines."""
    if value not in (None, ""):
        amount = Decimal(str(value))
        if amount >= 0:
            return amount
    return sum((line.amount for line in lines), Decimal(0))


def exchange_document(
    body: dict[str, Any], *, operation: str, deal: int, party: ExportParty, names: dict[str, str]
) -> ExportDocument:
    """The HTTP service's document (courier_documents ``instant_order_body`` /
    ``return_body``: the same readiness, customer, goods, date and money) -> the CommerceML
    document of ``operation``, numbered by the deal."""
    lines = export_lines(body["lines"], names)
    requisites = []
    if body.get("delivery_address"):
        requisites.append(("Адрес доставки", str(body["delivery_address"])))
    if body.get("shipment_id"):
        requisites.append(("Документ основание", str(body["shipment_id"])))
    return ExportDocument(
        id=str(body["ref_key"]),
        number=str(deal),
        # The body's date is 1С's wall clock already (connectors/onec/client.onec_datetime).
        moment=datetime.fromisoformat(body["date"]),
        operation=operation,
        currency=exchange_currency(body.get("currency")),
        amount=document_amount(body.get("amount"), lines),
        counterparty=party,
        lines=lines,
        comment=str(body.get("comment") or ""),
        requisites=tuple(requisites),
    )


# -- actions ------------------------------------------------------------------------------


class _ToExchange(_ToOneC):
    """What the two actions add to courier_documents' (clients, settings, readiness and
    goods: ``body`` of InstantOrderToOneC / ReturnToOneC, next in the subclasses' MRO): the
    export queue instead of the HTTP service."""

    operation: ClassVar[str]
    customer_field: ClassVar[str]
    body: Any  # the HTTP service's document, or None when there is nothing to create
    answered: Any  # whether 1С's answer is recorded already (its number)

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Queue the document once the courier's deal is won; its Ид. None when there is
        nothing to queue (not won yet, or 1С has answered with its document)."""
        if self.answered(change.payload):
            return None
        body = await self.body(change, xwalk)
        if body is None:
            return None
        deal = deal_id(change.payload)
        if deal is None:  # body() refuses such records; kept for the type checker
            raise NotACourierDeal(f"{self.entity} {change.entity_id} names no Bitrix24 deal")
        party = await self._party(
            xwalk.engine, str(change.payload.get(self.customer_field)), str(body["counterparty_id"])
        )
        names = await self._names(xwalk.engine, [str(line["product_id"]) for line in body["lines"]])
        doc = exchange_document(body, operation=self.operation, deal=deal, party=party, names=names)
        return await self._queue(change, xwalk, doc)

    async def _party(self, engine: AsyncEngine, canonical_id: str, guid: str) -> ExportParty:
        async def lookup():
            async with engine.connect() as conn:
                return (await conn.execute(_PARTY, {"id": canonical_id})).first()

        row = await retry_forever(
            lookup, stage="egress", what="counterparty lookup", entity=self.entity
        )
        if row is None:
            return ExportParty(id=guid, name="")
        return ExportParty(
            id=guid,
            name=row.name or "",
            full_name=row.full_name or "",
            inn=row.inn or "",
            kpp=row.kpp or "",
        )

    async def _names(self, engine: AsyncEngine, ids: list[str]) -> dict[str, str]:
        async def lookup():
            async with engine.connect() as conn:
                return (await conn.execute(_NAMES, {"ids": sorted(set(ids))})).all()

        rows = await retry_forever(lookup, stage="egress", what="product names", entity=self.entity)
        return {r.id: r.name for r in rows}

    async def _queue(self, change: Change, xwalk: Crosswalk, doc: ExportDocument) -> str:
        fragment = export_fragment(doc)

        async def put() -> int | None:
            return await ExportQueue(xwalk.engine).put(doc.id, self.entity, fragment)

        # The queue is this flow's target: a worker that lost the entity's lease must not
        # replace a newer document with the older one it holds.
        await guard_write("commerceml export queue")
        revision = await retry_forever(
            put, stage="egress", what="commerceml export queue", entity=self.entity
        )
        log.info(
            "document queued for 1С's exchange"
            if revision
            else "document already queued for 1С's exchange, unchanged",
            extra={
                "entity": self.entity,
                "entity_id": change.entity_id,
                "revision": revision,
                "lines": len(doc.lines),
            },
        )
        return doc.id


class InstantOrderToExchange(_ToExchange, InstantOrderToOneC):
    """A courier's instant order, queued for 1С's ``sale&mode=query`` (module docstring)."""

    operation: ClassVar[str] = ORDER_OPERATION
    customer_field: ClassVar[str] = "counterparty_id"

    @staticmethod
    def answered(payload: dict[str, Any]) -> bool:
        return bool(payload.get("onec_number"))


class ReturnToExchange(_ToExchange, ReturnToOneC):
    """A courier's return, queued for 1С's ``sale&mode=query`` (module docstring). Returns
    born in 1С are 1С's already: nothing to queue."""

    operation: ClassVar[str] = RETURN_OPERATION
    customer_field: ClassVar[str] = "courier_counterparty_id"

    @staticmethod
    def answered(payload: dict[str, Any]) -> bool:
        return bool(payload.get("number"))
