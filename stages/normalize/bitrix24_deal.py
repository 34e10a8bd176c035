"""Bitrix24 deals (``raw.bitrix24.deal``, ``crm.deal.get``: UPPER_CASE, every value a
string) -> InstantOrder or Return versions, by the deal's funnel (``CATEGORY_ID``). Pure.

* the instant-order funnel (``couriers.instant_order_category_id``): an order a courier took;
  Bitrix24 owns it, so the version carries the whole order;
* the returns funnel (``couriers.return_category_id``): a return a courier started; the
  version carries the courier's fields of the Return (1С owns the document);
* any other funnel: sales the pipeline does not model; no entity, no error.

Both are born in Bitrix24: the id is derived from the deal (``deal:42``) unless the deal
carries our canonical id (``couriers.deal_id_field``, ORIGIN_ID by default). A deleted deal
gives nothing: its funnel is no longer known, so whether it was an instant order or a return
cannot be told from the tombstone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical, derived_id
from mmstream.models.instant_order import InstantOrder
from mmstream.models.lines import MONEY_SCALE
from mmstream.models.return_ import Return
from stages.normalize import bitrix24_courier as b24
from stages.normalize.bitrix24_crm import counterparty_ref
from stages.normalize.oddities import b24_datetime, decimal, integer, text, yes_no
from stages.normalize.registry import Context

TOPICS = ("raw.bitrix24.deal",)


def normalize(
    value: dict[str, Any] | None, headers: Mapping[str, str], ctx: Context
) -> list[Canonical]:
    """One deal -> an InstantOrder or Return version, or none for other funnels."""
    if b24.is_tombstone(value):
        return []
    record = b24.record_of(value)
    category = integer(record.get("CATEGORY_ID"), "CATEGORY_ID")
    category = 0 if category is None else category  # the general funnel has no category
    settings = ctx.couriers
    if category == settings.instant_order_category_id:
        return [_instant_order(record, ctx)]
    if category == settings.return_category_id:
        return [_return(record, ctx)]
    return []


def _common(record: Mapping[str, Any], entity: str, ctx: Context) -> dict[str, Any]:
    key = f"deal:{b24.positive_id(record.get('ID'), 'ID')}"
    return {
        "id": b24.our_id(record, ctx.couriers.deal_id_field) or derived_id(entity, "bitrix24", key),
        **b24.version(record, "DATE_MODIFY", ctx),
        "external_ids": {"bitrix24": key},
    }


def _customer(record: Mapping[str, Any]):
    return counterparty_ref("company", record.get("COMPANY_ID")) or counterparty_ref(
        "contact", record.get("CONTACT_ID")
    )


def _instant_order(record: Mapping[str, Any], ctx: Context) -> InstantOrder:
    closed = bool(yes_no(record.get("CLOSED"), "CLOSED"))
    fields = ctx.couriers.deal_fields
    return InstantOrder(
        **_common(record, "instant_order", ctx),
        title=text(record.get("TITLE")),
        stage=text(record.get("STAGE_ID")),
        closed=closed,
        amount=decimal(record.get("OPPORTUNITY"), "OPPORTUNITY", MONEY_SCALE),
        currency=text(record.get("CURRENCY_ID")),
        counterparty_id=_customer(record),
        courier_id=b24.user_ref(record.get("ASSIGNED_BY_ID"), "ASSIGNED_BY_ID"),
        delivery_address=b24.mapped_text(record, fields, "delivery_address"),
        comment=text(record.get("COMMENTS")),
        created_at=b24_datetime(record.get("DATE_CREATE"), ctx.portal_tz, "DATE_CREATE"),
        closed_at=b24_datetime(record.get("CLOSEDATE"), ctx.portal_tz, "CLOSEDATE")
        if closed
        else None,
    )


def _return(record: Mapping[str, Any], ctx: Context) -> Return:
    fields = ctx.couriers.deal_fields
    return Return(
        **_common(record, "return", ctx),
        title=text(record.get("TITLE")),
        courier_id=b24.user_ref(record.get("ASSIGNED_BY_ID"), "ASSIGNED_BY_ID"),
        courier_stage=text(record.get("STAGE_ID")),
        courier_comment=text(record.get("COMMENTS")),
        courier_amount=decimal(record.get("OPPORTUNITY"), "OPPORTUNITY", MONEY_SCALE),
        courier_currency=text(record.get("CURRENCY_ID")),
        courier_counterparty_id=_customer(record),
        courier_shipment_id=b24.mapped_guid(record, fields, "shipment_id"),
        reported_at=b24_datetime(record.get("DATE_CREATE"), ctx.portal_tz, "DATE_CREATE"),
    )
