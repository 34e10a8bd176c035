"""Bitrix24 smart-process items (``raw.bitrix24.item``, ``crm.item.get``: camelCase, numeric
ids) -> DeliveryTask or Return versions, by the item's ``entityTypeId``. Pure.

* the delivery smart process (``couriers.delivery_entity_type_id``): only items we created
  are delivery tasks (our canonical id in ``couriers.delivery_item_id_field``); the version
  carries what the courier did. A final stage dates the outcome (``…:SUCCESS`` delivered,
  ``…:FAIL`` failed, at ``movedTime``) unless the portal has explicit fields for it;
* the returns smart process (``couriers.return_entity_type_id``): a return the courier
  started; the version carries the courier's fields of the Return;
* any other smart process: no entity, no error.

A deleted item gives nothing: the delivery status and the return status are the
middleware's to decide, and 1С owns the deletion of a return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical, derived_id
from mmstream.models.delivery_task import DeliveryTask
from mmstream.models.return_ import Return
from stages.normalize import bitrix24_courier as b24
from stages.normalize.bitrix24_crm import counterparty_ref
from stages.normalize.derive_delivery_task import status_version
from stages.normalize.oddities import b24_datetime, text
from stages.normalize.registry import Context

TOPICS = ("raw.bitrix24.item",)


def normalize(
    value: dict[str, Any] | None, headers: Mapping[str, str], ctx: Context
) -> list[Canonical]:
    """One item -> a DeliveryTask or Return version, or none for other smart processes."""
    if b24.is_tombstone(value):
        return []
    record = b24.record_of(value)
    event = record.get("_event")
    if not isinstance(event, dict):
        event = {}
    type_id = b24.positive_id(
        record.get("entityTypeId", event.get("entity_type_id")), "entityTypeId"
    )
    settings = ctx.couriers
    if type_id == settings.delivery_entity_type_id:
        return _delivery(record, type_id, ctx)
    if type_id == settings.return_entity_type_id:
        return [_return(record, type_id, ctx)]
    return []


def _key(record: Mapping[str, Any], type_id: int) -> str:
    return f"item:{type_id}:{b24.positive_id(record.get('id'), 'id')}"


def _outcome_time(
    record: Mapping[str, Any], fields: Mapping[str, str], name: str, outcome: str, ctx: Context
):
    explicit = b24.mapped_time(record, fields, name, ctx)
    if explicit is not None or fields.get(name):
        return explicit
    if b24.stage_outcome(text(record.get("stageId"))) == outcome:
        return b24_datetime(record.get("movedTime"), ctx.portal_tz, "movedTime")
    return None


def _delivery(record: Mapping[str, Any], type_id: int, ctx: Context) -> list[Canonical]:
    ident = b24.our_id(record, ctx.couriers.delivery_item_id_field)
    if ident is None:
        return []  # an item someone made by hand in the delivery funnel: not ours
    fields = ctx.couriers.delivery_item_fields
    amount, currency = b24.money(
        b24.mapped(record, fields, "collected_amount"),
        fields.get("collected_amount", "collected_amount"),
    )
    task = DeliveryTask(
        id=ident,
        **b24.version(record, "updatedTime", ctx),
        external_ids={"bitrix24": _key(record, type_id)},
        courier_id=b24.user_ref(record.get("assignedById"), "assignedById"),
        courier_status=text(record.get("stageId")),
        courier_comment=b24.mapped_text(record, fields, "courier_comment"),
        delivered_at=_outcome_time(record, fields, "delivered_at", "success", ctx),
        failed_at=_outcome_time(record, fields, "failed_at", "failure", ctx),
        collected_amount=amount,
        collected_currency=currency,
    )
    status = status_version(task)
    return [task] if status is None else [task, status]


def _return(record: Mapping[str, Any], type_id: int, ctx: Context) -> Return:
    key = _key(record, type_id)
    fields = ctx.couriers.return_item_fields
    if fields.get("courier_amount"):
        amount, currency = b24.money(
            b24.mapped(record, fields, "courier_amount"), fields["courier_amount"]
        )
    else:
        amount, currency = b24.money(record.get("opportunity"), "opportunity")
        currency = currency or text(record.get("currencyId"))
    return Return(
        id=b24.our_id(record, ctx.couriers.return_item_id_field)
        or derived_id("return", "bitrix24", key),
        **b24.version(record, "updatedTime", ctx),
        external_ids={"bitrix24": key},
        title=text(record.get("title")),
        courier_id=b24.user_ref(record.get("assignedById"), "assignedById"),
        courier_stage=text(record.get("stageId")),
        courier_comment=b24.mapped_text(record, fields, "courier_comment"),
        courier_amount=amount,
        courier_currency=currency,
        courier_counterparty_id=counterparty_ref("company", record.get("companyId"))
        or counterparty_ref("contact", record.get("contactId")),
        courier_shipment_id=b24.mapped_guid(record, fields, "shipment_id"),
        reported_at=b24_datetime(record.get("createdTime"), ctx.portal_tz, "createdTime"),
    )
