"""Instant orders and returns started by couriers in Bitrix24 (flow 3): documents in 1С, and
their status back in Bitrix24.

* :class:`InstantOrderToOneC` / :class:`ReturnToOneC` -> 1С: once the courier's deal reaches
  a final success stage (``C3:WON``), the 1С document is created through the HTTP service,
  with ``Idempotency-Key`` ``<entity>:<canonical id>`` and ``ref_key`` = our canonical id, so
  a retry after a timeout answers the first result and the document 1С later pushes back is
  the same entity. The goods are the deal's product rows (``crm.deal.productrows.get``),
  each product mapped to its 1С GUID by the crosswalk — or, while the product's link has
  not landed (an add whose answer was lost), by the portal row's xmlId naming a product we
  hold; the customer must be one 1С holds.
  1С's answer is published on ``raw.onec.result`` *before* the delivery is recorded, so the
  entity sink merges it (the document's number, posted flag, and the middleware's status
  ``recorded``) like any other source; a crash in between repeats the call, and 1С replays
  the same answer.
* :class:`InstantOrderStatus` / :class:`ReturnStatus` -> Bitrix24: the status (and 1С
  number) are written to the deal's fields (``flows.deal_status_field``,
  ``flows.deal_document_field``). Changes made in Bitrix24 itself are not written back.
  A deal deleted in Bitrix24 (``crm.deal.update`` answers "Not found") takes no status:
  the write is skipped with a warning and ``mm_egress_deliveries_total{outcome="target_gone"}``
  — not dead-lettered, since no replay could find the deal again.

The 1С side of both is selectable per flow (``onec.write_via.instant_order`` / ``.returns``):
``http_service`` (above, the default), ``odata`` — :class:`InstantOrderToOneCOData` /
:class:`ReturnToOneCOData` create and post the documents through the standard OData
interface of a stock base (stages/egress/onec_odata.py: look-before-create by Ref_Key),
publishing the same ``raw.onec.result`` — and ``commerceml``
(stages/egress/commerceml_orders.py). stages/egress/actions.py picks the class.

Returns started as smart-process items carry no product rows this flow can read: they go to
the DLQ saying so (:class:`ReturnWithoutGoods`) instead of reaching 1С without goods.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import text

from connectors.bitrix24.errors import InvalidRequest
from connectors.onec.client import WriteResult, onec_datetime
from mmstream.errors import PermanentError
from mmstream.metrics import EGRESS_DELIVERIES
from mmstream.retry import retry_forever
from stages.egress import onec_odata
from stages.egress.actions import Targets
from stages.egress.bitrix24_product import ProductAction
from stages.egress.delivery import Change, Crosswalk, DependencyPending
from stages.egress.events import event_record, publish
from stages.egress.values import currency, money
from stages.normalize.bitrix24_courier import stage_outcome

log = logging.getLogger(__name__)

RESULT_TOPIC = "raw.onec.result"
#: Middleware statuses after which nothing more goes to 1С.
DONE = ("recorded", "cancelled")
#: The egress outcome counted (besides "delivered") for a status whose deal is gone.
DEAL_GONE = "target_gone"
#: Whether we hold a product (its canonical id is the 1С GUID the document names).
_HELD_PRODUCT = text("SELECT id::text FROM product WHERE id = CAST(:id AS uuid)")


class ReturnWithoutGoods(PermanentError):
    """The courier's return has no goods this flow can read (a smart-process item, or a deal
    without product rows): 1С refuses a return without lines. Add the goods to the deal in
    Bitrix24, then replay the record."""

    code = "return_without_goods"


class NotACourierDeal(PermanentError):
    """The record names no Bitrix24 deal (``external_ids.bitrix24`` is not ``deal:<id>``),
    so there is nothing to read the goods from or to write the status to."""

    code = "not_a_courier_deal"


# -- pure mapping -------------------------------------------------------------------------


def deal_id(payload: dict[str, Any]) -> int | None:
    """42 from ``external_ids.bitrix24`` = ``deal:42``; None for another record kind."""
    key = str((payload.get("external_ids") or {}).get("bitrix24") or "")
    kind, _, number = key.partition(":")
    return int(number) if kind == "deal" and number.isdigit() else None


def ready_for_onec(payload: dict[str, Any], stage_field: str) -> bool:
    """Whether the courier finished the deal (a final success stage) and 1С has no document
    of it yet."""
    if payload.get("deleted") or payload.get("status", "new") in DONE:
        return False
    return stage_outcome(str(payload.get(stage_field) or "")) == "success"


def goods_lines(rows: list[dict[str, Any]], products: dict[int, str]) -> list[dict[str, Any]]:
    """Deal product rows -> the contract's GoodsLine list (``products``: Bitrix24 product id
    -> 1С GUID). Rows with no quantity are left out (Bitrix24 keeps them as placeholders)."""
    lines = []
    for row in rows:
        quantity = Decimal(str(row.get("QUANTITY") or 0))
        if quantity <= 0:
            continue
        price = Decimal(str(row.get("PRICE") or 0))
        lines.append(
            {
                "product_id": products[int(row["PRODUCT_ID"])],
                "quantity": float(quantity),
                "price": float(price),
                "amount": float(price * quantity),
            }
        )
    return lines


def instant_order_body(
    payload: dict[str, Any],
    *,
    customer: str,
    lines: list[dict[str, Any]],
    document_type: str,
    tz: ZoneInfo,
    post: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Canonical instant order -> the contract's InstantOrder."""
    moment = payload.get("closed_at") or payload.get("created_at")
    when = datetime.fromisoformat(moment) if moment else (now or datetime.now(UTC))
    body: dict[str, Any] = {
        "source_id": str(payload["id"]),
        "ref_key": str(payload["id"]),
        "document_type": document_type,
        "date": onec_datetime(when, tz),
        "counterparty_id": customer,
        "currency": currency(payload.get("currency")),
        "lines": lines,
        "post": post,
    }
    if (amount := money(payload.get("amount"))) is not None:
        body["amount"] = amount
    for name in ("delivery_address", "comment"):
        if payload.get(name):
            body[name] = str(payload[name])[:1024]
    return body


def return_body(
    payload: dict[str, Any],
    *,
    customer: str,
    lines: list[dict[str, Any]],
    shipment: str | None,
    tz: ZoneInfo,
    post: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Canonical return (the courier's fields) -> the contract's Return."""
    moment = payload.get("reported_at")
    when = datetime.fromisoformat(moment) if moment else (now or datetime.now(UTC))
    body: dict[str, Any] = {
        "source_id": str(payload["id"]),
        "ref_key": str(payload["id"]),
        "date": onec_datetime(when, tz),
        "counterparty_id": customer,
        "currency": currency(payload.get("courier_currency")),
        "lines": lines,
        "post": post,
    }
    if shipment:
        body["shipment_id"] = shipment
    if (amount := money(payload.get("courier_amount"))) is not None:
        body["amount"] = amount
    if payload.get("courier_comment"):
        body["comment"] = str(payload["courier_comment"])[:1024]
    return body


def result_value(entity: str, entity_id: str, result: WriteResult) -> dict[str, Any]:
    """What ``raw.onec.result`` carries for one answer (stages/normalize/onec_result.py)."""
    doc = result.document
    return {
        "entity": entity,
        "id": entity_id,
        "status": "recorded",
        "idempotency_key": result.idempotency_key,
        "operation": result.operation,
        "answered_at": result.created_at,
        "document": {
            "type": doc.type,
            "ref_key": doc.ref_key,
            "number": doc.number,
            "date": doc.date,
            "posted": doc.posted,
        },
    }


def status_fields(
    status: str, number: str, *, status_field: str, document_field: str
) -> dict[str, Any]:
    """The deal fields showing the middleware's status and the 1С document number."""
    fields: dict[str, Any] = {status_field: status}
    if number:
        fields[document_field] = number
    return fields


# -- actions ------------------------------------------------------------------------------


class _ToOneC:
    """What the two document actions share: both clients, the result topic, settings."""

    target: ClassVar[str] = "onec"
    entity: ClassVar[str]

    def __init__(self, targets: Targets) -> None:
        self.onec = targets.onec
        self.bitrix24 = targets.bitrix24
        self.producer = targets.producer
        self.flows = targets.settings.flows
        self.tz = ZoneInfo(targets.settings.onec.timezone)
        self.result_topic = targets.settings.topic(RESULT_TOPIC)
        # The product action's own look-up (catalog scope and all): one way to find a product.
        self.products = ProductAction(targets)

    async def _lines(self, deal: int, xwalk: Crosswalk) -> list[dict[str, Any]]:
        rows = await self.bitrix24.call("crm.deal.productrows.get", {"id": deal}) or []
        # Placeholder rows (no quantity) are no goods: their products need no 1С match.
        rows = [r for r in rows if Decimal(str(r.get("QUANTITY") or 0)) > 0]
        products: dict[int, str] = {}
        for row in rows:
            number = int(row.get("PRODUCT_ID") or 0)
            if number in products:
                continue
            canonical = await xwalk.canonical_id("product", "bitrix24", str(number))
            if canonical is None:
                canonical = await self._ours_by_key(deal, number, xwalk)
            if canonical is None:
                raise DependencyPending(
                    f"deal {deal}: product {number} ({row.get('PRODUCT_NAME') or 'no name'}) "
                    "is not a product from 1С; pick a 1С product in the deal, then replay"
                )
            products[number] = canonical
        return goods_lines(rows, products)

    async def body(self, change: Change, xwalk: Crosswalk) -> dict[str, Any] | None:
        """The document the contract wants; None when there is nothing to create."""
        raise NotImplementedError

    async def _ours_by_key(self, deal: int, number: int, xwalk: Crosswalk) -> str | None:
        """Our product that Bitrix24 product ``number`` is, read from its external key
        (``xmlId``) at the portal, when the crosswalk does not link it (yet); None when it is
        not one of ours.

        The product egress writes the key with the product; the link comes with an answer:
        the add's own, or a later attempt's look-up by the key. After an ``add`` the portal
        executed and whose answer was lost (a storm, a timeout), the product is in the
        catalog — couriers pick it — while its delivery waits for its next attempt on the
        delayed path (backoff up to ``retry.max_delay_s``) or in the DLQ. The document need
        not wait: the key says which 1С product it is. Only a product we hold counts (anyone
        may put any text in a product's xmlId). Nothing is linked here: the product's own
        delivery links what it finds, under its lease."""
        row = await self.products.find_row({"id": number})
        key = str((row or {}).get("xmlId") or "").strip()
        try:
            ref = str(UUID(key))
        except ValueError:
            return None

        async def held() -> str | None:
            async with xwalk.engine.connect() as conn:
                return await conn.scalar(_HELD_PRODUCT, {"id": ref})

        found = await retry_forever(held, stage="egress", what="product lookup", entity=self.entity)
        if found is not None:
            log.info(
                "deal product found by its xmlId (not linked yet)",
                extra={
                    "entity": self.entity,
                    "deal": deal,
                    "bitrix24_product": number,
                    "product_id": found,
                },
            )
        return found

    async def _answered(self, change: Change, result: WriteResult) -> str:
        value = result_value(self.entity, change.entity_id, result)
        await publish(
            self.producer,
            event_record(
                self.result_topic,
                "onec.result",
                self.entity,
                change.entity_id,
                value,
                dedupe=result.idempotency_key,
            ),
            self.entity,
        )
        log.info(
            "1С recorded the document",
            extra={
                "entity": self.entity,
                "entity_id": change.entity_id,
                "document": json.dumps(value["document"], ensure_ascii=False),
                "replayed": result.replayed,
            },
        )
        return result.document.ref_key


class InstantOrderToOneC(_ToOneC):
    """A courier's instant order as a 1С customer order or shipment (module docstring)."""

    entity: ClassVar[str] = "instant_order"

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Create the 1С document once the deal is won; its Ref_Key."""
        body = await self.body(change, xwalk)
        if body is None:
            return _known_document(change)
        result = await self.onec.create_instant_order(f"instant_order:{change.entity_id}", body)
        return await self._answered(change, result)

    async def body(self, change: Change, xwalk: Crosswalk) -> dict[str, Any] | None:
        """The contract's InstantOrder of a won deal; None when there is nothing to create
        (not won yet, or 1С has the document)."""
        payload = change.payload
        if payload.get("onec_document_id"):
            return None
        if not ready_for_onec(payload, "stage"):
            return None
        deal = deal_id(payload)
        if deal is None:
            raise NotACourierDeal(f"instant order {change.entity_id} names no Bitrix24 deal")
        customer = await xwalk.require_onec(
            "counterparty", payload.get("counterparty_id"), "customer of an instant order"
        )
        if customer is None:
            raise DependencyPending(f"deal {deal}: the instant order names no customer yet")
        lines = await self._lines(deal, xwalk)
        if not lines:
            raise DependencyPending(f"deal {deal}: no goods in the instant order yet")
        return instant_order_body(
            payload,
            customer=customer,
            lines=lines,
            document_type=self.flows.instant_order_document,
            tz=self.tz,
            post=self.flows.post_documents,
        )


class ReturnToOneC(_ToOneC):
    """A courier's return as a 1С ВозвратТоваровОтКлиента (module docstring). Returns born
    in 1С are 1С's already: nothing to create."""

    entity: ClassVar[str] = "return"

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Create the 1С return once the courier's deal is won; its Ref_Key."""
        body = await self.body(change, xwalk)
        if body is None:
            return None
        result = await self.onec.create_return(f"return:{change.entity_id}", body)
        return await self._answered(change, result)

    async def body(self, change: Change, xwalk: Crosswalk) -> dict[str, Any] | None:
        """The contract's Return of a won courier deal; None when there is nothing to create."""
        payload = change.payload
        external = payload.get("external_ids") or {}
        if "bitrix24" not in external or "onec" in external or payload.get("number"):
            return None
        if not ready_for_onec(payload, "courier_stage"):
            return None
        deal = deal_id(payload)
        if deal is None:
            raise ReturnWithoutGoods(
                f"return {change.entity_id} started as "
                f"{external.get('bitrix24')}: its goods cannot be read"
            )
        customer = await xwalk.require_onec(
            "counterparty", payload.get("courier_counterparty_id"), "customer of a return"
        )
        if customer is None:
            raise DependencyPending(f"deal {deal}: the return names no customer yet")
        shipment = await xwalk.require_onec(
            "shipment", payload.get("courier_shipment_id"), "shipment of a return"
        )
        lines = await self._lines(deal, xwalk)
        if not lines:
            raise ReturnWithoutGoods(f"deal {deal}: the return has no goods")
        return return_body(
            payload,
            customer=customer,
            lines=lines,
            shipment=shipment,
            tz=self.tz,
            post=self.flows.post_documents,
        )


def _known_document(change: Change) -> str | None:
    """The Ref_Key of the 1С document an instant order has already (returns carry none)."""
    known = change.payload.get("onec_document_id")
    return str(known) if known else None


class _ODataMode(_ToOneC):
    """Creates the document through the standard OData interface instead of the HTTP
    service (stages/egress/onec_odata.py); the rest of the flow is the parent's."""

    odata_writes: Any

    def entity_set(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    def record(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Create (look-before-create) and post the 1С document; its Ref_Key."""
        body = await self.body(change, xwalk)
        if body is None:
            return _known_document(change)
        entity_set = self.entity_set(body)
        record, existed = await onec_odata.ensure_document(
            self.onec, entity_set, self.record(body), post=bool(body.get("post"))
        )
        result = onec_odata.write_result(
            entity_set,
            record,
            key=f"{self.entity}:{change.entity_id}",
            operation=self.entity,
            replayed=existed,
        )
        return await self._answered(change, result)


class InstantOrderToOneCOData(_ODataMode, InstantOrderToOneC):
    """A courier's instant order as a 1С order / shipment created through OData."""

    def __init__(self, targets: Targets) -> None:
        super().__init__(targets)
        self.odata_writes = targets.settings.onec.odata_writes

    def entity_set(self, body: dict[str, Any]) -> str:
        return onec_odata.entity_sets(self.odata_writes)[body["document_type"]]

    def record(self, body: dict[str, Any]) -> dict[str, Any]:
        return onec_odata.instant_order_record(body, self.odata_writes.order_defaults)


class ReturnToOneCOData(_ODataMode, ReturnToOneC):
    """A courier's return as a 1С return created through OData."""

    def __init__(self, targets: Targets) -> None:
        super().__init__(targets)
        self.odata_writes = targets.settings.onec.odata_writes

    def entity_set(self, body: dict[str, Any]) -> str:
        return onec_odata.entity_sets(self.odata_writes)["return"]

    def record(self, body: dict[str, Any]) -> dict[str, Any]:
        return onec_odata.return_record(
            body, self.odata_writes.return_defaults, self.odata_writes.configuration
        )


class _StatusToDeal:
    """The middleware's status and the 1С number, written to the courier's deal."""

    target: ClassVar[str] = "bitrix24"
    entity: ClassVar[str]
    number_field: ClassVar[str]

    def __init__(self, targets: Targets) -> None:
        self.client = targets.bitrix24
        self.flows = targets.settings.flows

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Update the deal; ``deal:<id>``. None for Bitrix24's own changes, deletions and
        records of other kinds (returns born in 1С have no deal)."""
        payload = change.payload
        deal = deal_id(payload)
        # A reconcile repair (stages/outbox/restate.py REPAIR_MARK) re-states the whole row:
        # written whoever wrote its last version.
        courier_own = payload.get("source") == "bitrix24" and not payload.get("mm_reconcile_run")
        if courier_own or change.deleted or deal is None:
            return None
        fields = status_fields(
            str(payload.get("status") or ""),
            str(payload.get(self.number_field) or ""),
            status_field=self.flows.deal_status_field,
            document_field=self.flows.deal_document_field,
        )
        try:
            await self.client.call("crm.deal.update", {"id": deal, "fields": fields})
        except InvalidRequest as exc:
            if not exc.not_found:
                raise
            # The deal was deleted in Bitrix24 (by a person, or the portal was reset): the
            # status has nowhere to go, and no replay can change that — so no DLQ record.
            # The 1С document stands; the warning and the counter let an operator see it.
            EGRESS_DELIVERIES.labels(self.target, self.entity, DEAL_GONE).inc()
            log.warning(
                "deal %s is gone from the portal: the %s status %r of %s is not written back",
                deal,
                self.entity,
                fields.get(self.flows.deal_status_field),
                change.entity_id,
                extra={"entity": self.entity, "entity_id": change.entity_id},
            )
            return None
        return f"deal:{deal}"


class InstantOrderStatus(_StatusToDeal):
    """An instant order's status and 1С number on its deal."""

    entity: ClassVar[str] = "instant_order"
    number_field: ClassVar[str] = "onec_number"


class ReturnStatus(_StatusToDeal):
    """A return's status and 1С number on its deal."""

    entity: ClassVar[str] = "return"
    number_field: ClassVar[str] = "number"
