"""The delivery task a 1С customer order or shipment asks for. Pure; no TOPICS (called by
whoever decides that a document needs a delivery, with the document's canonical values).

One delivery per order: a shipment of an order updates the task of that order (adding the
shipment), a shipment without an order gets a task of its own. The task id is derived from
that document's GUID, so every worker and every replay derives the same id with no lookup.

The version is 1С's (``source="onec"``): it writes only the fields 1С owns (the order data
and the deletion). An order's version written after its shipment keeps the shipment link
(pass the stored task as ``current``). A new task starts with the middleware's status
default ("new"); later 1С changes never touch the status, nor what the courier did.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from mmstream.models.base import derived_id
from mmstream.models.delivery_task import DeliveryTask
from stages.normalize.oddities import Unnormalizable


def delivery_task_id(order_id: UUID | None, shipment_id: UUID | None = None) -> UUID:
    """The canonical id of the delivery of an order (or of a shipment without an order)."""
    base = order_id or shipment_id
    if base is None:
        raise Unnormalizable("a delivery task needs a customer order or a shipment")
    return derived_id("delivery_task", "middleware", str(base))


def delivery_task_from_order(
    *,
    order_id: UUID,
    version: str,
    number: str = "",
    counterparty_id: UUID | None = None,
    warehouse_id: UUID | None = None,
    delivery_address: str = "",
    amount_to_collect: Decimal | None = None,
    planned_from: datetime | None = None,
    planned_to: datetime | None = None,
    deleted: bool = False,
    current: DeliveryTask | None = None,
) -> DeliveryTask:
    """The delivery task of a customer order (its 1С DataVersion as ``version``).

    ``current`` is the task as stored, if any: a version writes every field 1С owns, so the
    shipment already linked to the task is carried over rather than cleared.
    """
    shipment_id = current.shipment_id if current is not None else None
    return _task(
        order_id=order_id,
        shipment_id=shipment_id,
        version=f"order:{version}",
        number=number,
        counterparty_id=counterparty_id,
        warehouse_id=warehouse_id,
        delivery_address=delivery_address,
        amount_to_collect=amount_to_collect,
        planned_from=planned_from,
        planned_to=planned_to,
        deleted=deleted,
    )


def delivery_task_from_shipment(
    *,
    shipment_id: UUID,
    version: str,
    order_id: UUID | None = None,
    number: str = "",
    counterparty_id: UUID | None = None,
    warehouse_id: UUID | None = None,
    delivery_address: str = "",
    amount_to_collect: Decimal | None = None,
    planned_from: datetime | None = None,
    planned_to: datetime | None = None,
    deleted: bool = False,
) -> DeliveryTask:
    """The delivery task of a shipment: its order's task when it ships an order.

    A shipment's deletion mark does not delete its order's delivery (the order may still be
    shipped otherwise): only a shipment without an order deletes its own task.
    """
    return _task(
        order_id=order_id,
        shipment_id=shipment_id,
        version=f"shipment:{version}",
        number=number,
        counterparty_id=counterparty_id,
        warehouse_id=warehouse_id,
        delivery_address=delivery_address,
        amount_to_collect=amount_to_collect,
        planned_from=planned_from,
        planned_to=planned_to,
        deleted=deleted and order_id is None,
    )


def _task(
    *,
    order_id: UUID | None,
    shipment_id: UUID | None,
    version: str,
    number: str,
    counterparty_id: UUID | None,
    warehouse_id: UUID | None,
    delivery_address: str,
    amount_to_collect: Decimal | None,
    planned_from: datetime | None,
    planned_to: datetime | None,
    deleted: bool,
) -> DeliveryTask:
    if version.endswith(":") or not version:
        raise Unnormalizable("version: the 1С DataVersion of the document is missing")
    for name, moment in (("planned_from", planned_from), ("planned_to", planned_to)):
        if moment is not None and moment.tzinfo is None:
            raise Unnormalizable(
                f"{name}: needs a time zone (1С dates are read with the base's zone first)"
            )
    if planned_from and planned_to and planned_to < planned_from:
        raise Unnormalizable("planned_to: the delivery window ends before it starts")
    if amount_to_collect is not None and amount_to_collect < 0:
        raise Unnormalizable("amount_to_collect: must not be negative")
    external = {"onec": str(order_id or shipment_id)}
    return DeliveryTask(
        id=delivery_task_id(order_id, shipment_id),
        source="onec",
        version=version,
        deleted=deleted,
        external_ids=external,
        order_id=order_id,
        shipment_id=shipment_id,
        number=number.strip(),
        counterparty_id=counterparty_id,
        warehouse_id=warehouse_id,
        delivery_address=delivery_address.strip(),
        amount_to_collect=amount_to_collect,
        planned_from=planned_from,
        planned_to=planned_to,
    )


def needs_delivery(delivery_address: str, *, address_required: bool = True) -> bool:
    """Whether a customer order asks for a courier: it names a delivery address (an order
    without one is collected by the customer). ``address_required=False`` makes every
    order a delivery."""
    return bool(delivery_address.strip()) or not address_required


#: tasks.task status codes -> the delivery status (1 new, 2 pending, 3 in progress,
#: 4 awaiting control, 5 completed, 6 deferred, 7 declined).
_TASK_STATUSES = {
    "1": "assigned",
    "2": "assigned",
    "3": "in_progress",
    "4": "in_progress",
    "5": "delivered",
    "6": "in_progress",
    "7": "failed",
}


def delivery_status(
    courier_status: str, *, delivered: bool = False, failed: bool = False
) -> str | None:
    """The delivery status the middleware derives from what the courier's object shows: a
    task status code or a smart-process stage (``DT133_10:SUCCESS``). An explicit outcome
    (the portal's delivered/failed fields) wins; None when the status says nothing."""
    if failed:
        return "failed"
    if delivered:
        return "delivered"
    status = courier_status.strip()
    if status in _TASK_STATUSES:
        return _TASK_STATUSES[status]
    if ":" in status:  # a smart-process stage
        tail = status.rsplit(":", 1)[-1].upper()
        if tail == "SUCCESS":
            return "delivered"
        if tail == "FAIL":
            return "failed"
        return "assigned" if tail in ("NEW", "PREPARATION") else "in_progress"
    return None


def status_version(task: DeliveryTask) -> DeliveryTask | None:
    """The middleware's version of a task's status after a Bitrix24 version of it (same
    stamp, so an older courier change never sets the status back); None when the courier's
    status says nothing. Only ``status`` is the middleware's: the merge keeps every other
    field as its owner wrote it."""
    status = delivery_status(
        task.courier_status,
        delivered=task.delivered_at is not None,
        failed=task.failed_at is not None,
    )
    if status is None:
        return None
    return DeliveryTask(
        id=task.id,
        source="middleware",
        version=f"{task.version}:{status}",
        source_stamp=task.source_stamp,
        status=status,
    )
