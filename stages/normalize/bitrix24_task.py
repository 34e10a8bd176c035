"""Bitrix24 tasks (``raw.bitrix24.task``, ``tasks.task.get``: camelCase, string ids) ->
DeliveryTask versions carrying what the courier did. Pure.

Only tasks we created are delivery tasks: we write our canonical id into the task (XML_ID by
default, ``couriers.task_id_field``). Any other task is of no interest: no entity, no error.
The version carries the Bitrix24-owned fields only (courier, status code, comment, times,
money collected); the sink keeps the 1С and middleware fields of the task as they are. The
delivery status the middleware derives from it follows as a version of its own
(:func:`~stages.normalize.derive_delivery_task.status_version`).

A deleted task (tombstone) gives nothing: its key (``task:42``) does not name our id, and the
delivery status is the middleware's to decide, not a deletion of the delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.delivery_task import DeliveryTask
from stages.normalize import bitrix24_courier as b24
from stages.normalize.derive_delivery_task import status_version
from stages.normalize.oddities import b24_datetime, text
from stages.normalize.registry import Context

TOPICS = ("raw.bitrix24.task",)
COMPLETED = "5"
"""tasks.task status code of a completed task (2 pending, 3 in progress, 4 awaiting control,
5 completed, 6 deferred)."""


def normalize(
    value: dict[str, Any] | None, headers: Mapping[str, str], ctx: Context
) -> list[DeliveryTask]:
    """One task -> one DeliveryTask version, or none for a task that is not a delivery."""
    if b24.is_tombstone(value):
        return []
    record = b24.record_of(value)
    settings = ctx.couriers
    ident = b24.our_id(record, settings.task_id_field)
    if ident is None:
        return []
    number = b24.positive_id(record.get("id"), "id")
    fields = settings.task_fields
    status = text(record.get("status"))
    delivered = b24.mapped_time(record, fields, "delivered_at", ctx)
    if delivered is None and status == COMPLETED:
        delivered = b24_datetime(record.get("closedDate"), ctx.portal_tz, "closedDate")
    amount, currency = b24.money(
        b24.mapped(record, fields, "collected_amount"),
        fields.get("collected_amount", "collected_amount"),
    )
    task = DeliveryTask(
        id=ident,
        **b24.version(record, "changedDate", ctx),
        external_ids={"bitrix24": f"task:{number}"},
        courier_id=b24.user_ref(record.get("responsibleId"), "responsibleId"),
        courier_status=status,
        courier_comment=b24.mapped_text(record, fields, "courier_comment"),
        delivered_at=delivered,
        failed_at=b24.mapped_time(record, fields, "failed_at", ctx),
        collected_amount=amount,
        collected_currency=currency,
    )
    derived = status_version(task)
    return [task] if derived is None else [task, derived]
