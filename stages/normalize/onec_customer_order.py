"""1С customer orders -> canonical CustomerOrder: ЗаказКлиента (УТ 11) and ЗаказПокупателя
(УТ 10.3) in the OData / JSON push shape, and CommerceML orders (``"_source":
"commerceml"``, see commerceml_customer_order.py), which share the raw topic.

An 1С order with a delivery address also gives the delivery task it asks for (flow 2); its
deletion mark deletes that task. CommerceML orders come from the site's exchange, whose
deliveries 1С plans itself: they give no task."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical
from mmstream.models.customer_order import CustomerOrder
from mmstream.models.delivery_task import DeliveryTask
from stages.normalize.commerceml_customer_order import to_order
from stages.normalize.derive_delivery_task import delivery_task_from_order, needs_delivery
from stages.normalize.oddities import onec_datetime, text
from stages.normalize.onec_common import first_ref, record_of
from stages.normalize.onec_document import deletion, goods_lines, header, includes_vat, ref_to
from stages.normalize.registry import Context

TOPICS = ("raw.onec.customer_order",)

SECTIONS = ("Товары", "Услуги")


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One order record -> its canonical version (Unnormalizable names the bad field)."""
    if record_of(value).get("_source") == "commerceml":
        return [to_order(value, ctx)]
    fields, deleted = header(value, ctx)
    if deleted:
        return deletion(CustomerOrder, fields)
    wanted = "ЖелаемаяДатаОтгрузки" if "ЖелаемаяДатаОтгрузки" in value else "ДатаОтгрузки"
    order = CustomerOrder(
        **fields,
        counterparty_id=ref_to(value, "counterparty", "Контрагент"),
        partner_id=first_ref(value, "Партнер_Key"),
        contract_id=first_ref(value, "Договор_Key", "ДоговорКонтрагента_Key"),
        # УТ 10.3 СкладГруппа is composite: a warehouse or a group of them.
        warehouse_id=ref_to(value, "warehouse", "Склад", "СкладГруппа"),
        status=text(value.get("Статус")),
        shipment_date=onec_datetime(value.get(wanted), ctx.onec_tz, wanted),
        delivery_address=text(value.get("АдресДоставки")),
        amount_includes_vat=includes_vat(value),
        lines=goods_lines(value, *SECTIONS),
    )
    return [order, *delivery_of(order, ctx)]


def delivery_of(order: CustomerOrder, ctx: Context) -> list[DeliveryTask]:
    """The delivery task an order asks for (none for an order collected by the customer).
    An order marked for deletion deletes its task. A record saying only that the order
    vanished gives nothing: whether it had a task cannot be told, and a deletion of a task
    that never existed would publish a tombstone of nothing."""
    if not needs_delivery(order.delivery_address, address_required=ctx.delivery_needs_address):
        return []
    return [
        delivery_task_from_order(
            order_id=order.id,
            version=order.version,
            number=order.number,
            counterparty_id=order.counterparty_id,
            warehouse_id=order.warehouse_id,
            delivery_address=order.delivery_address,
            amount_to_collect=order.amount,
            planned_from=order.shipment_date,
            deleted=order.deleted,
        )
    ]
