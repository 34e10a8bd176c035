"""Canonical delivery task: one delivery of a 1С customer order or shipment by a courier.

The middleware creates it (from the 1С document, :mod:`stages.normalize.derive_delivery_task`)
and shows it to couriers in Bitrix24 as a task or a smart-process item, writing our canonical
id into that record. Three systems write one task, each its own fields (design.md):
* the middleware owns the delivery status (``OWNER``);
* 1С owns the order data: document references, address, amount to collect, planned window,
  and the deletion (the document marked for deletion);
* Bitrix24 owns what the courier did: courier, stage, comment, times, money collected.

``external_ids['bitrix24']`` is the record key of the courier's object (``task:42`` or
``item:<entityTypeId>:42``): it says which REST family to call, and ids of tasks and items
overlap.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical
from mmstream.models.lines import money

_ONEC = (
    "order_id",
    "shipment_id",
    "number",
    "counterparty_id",
    "warehouse_id",
    "delivery_address",
    "amount_to_collect",
    "planned_from",
    "planned_to",
    "deleted",
)
_BITRIX24 = (
    "courier_id",
    "courier_status",
    "courier_comment",
    "delivered_at",
    "failed_at",
    "collected_amount",
    "collected_currency",
)


class DeliveryTask(Canonical):
    """A delivery a courier makes: what 1С asks for, what the courier did, and its status."""

    ENTITY: ClassVar[str] = "delivery_task"
    OWNER: ClassVar[str] = "middleware"
    FIELD_OWNERS: ClassVar[dict[str, str]] = {
        **{name: "onec" for name in _ONEC},
        **{name: "bitrix24" for name in _BITRIX24},
    }

    status: str = Field(
        "new",
        description="delivery status the middleware keeps: new, "
        "assigned, in_progress, delivered, failed, cancelled",
    )
    order_id: UUID | None = Field(
        None,
        description="customer order delivered (1С ЗаказКлиента / ЗаказПокупателя)",
        json_schema_extra={"ref": "customer_order"},
    )
    shipment_id: UUID | None = Field(
        None,
        description="shipment delivered (1С РеализацияТоваровУслуг)",
        json_schema_extra={"ref": "shipment"},
    )
    number: str = Field("", description="number of the 1С document the task was made from")
    counterparty_id: UUID | None = Field(
        None, description="customer (1С Контрагент)", json_schema_extra={"ref": "counterparty"}
    )
    warehouse_id: UUID | None = Field(
        None, description="warehouse the goods leave from", json_schema_extra={"ref": "warehouse"}
    )
    delivery_address: str = Field("", description="delivery address as text (1С АдресДоставки)")
    amount_to_collect: Decimal | None = money(
        "money the courier is to collect from the customer, in the document currency"
    )
    planned_from: datetime | None = Field(None, description="start of the planned delivery window")
    planned_to: datetime | None = Field(None, description="end of the planned delivery window")
    courier_id: UUID | None = Field(
        None,
        description="courier responsible in Bitrix24 (the "
        "task's responsible / the item's assignee)",
        json_schema_extra={"ref": "employee"},
    )
    courier_status: str = Field(
        "",
        description="status as Bitrix24 shows it: the task status "
        "code (2 pending, 3 in progress, 5 completed, "
        "...) or the item stageId (DT133_10:SUCCESS)",
    )
    courier_comment: str = Field("", description="the courier's comment")
    delivered_at: datetime | None = Field(
        None, description="when the courier reported the delivery done"
    )
    failed_at: datetime | None = Field(
        None, description="when the courier reported the delivery failed"
    )
    collected_amount: Decimal | None = money("money the courier reports collected")
    collected_currency: str = Field(
        "", description="currency of collected_amount (ISO code as Bitrix24 writes it, e.g. RUB)"
    )
