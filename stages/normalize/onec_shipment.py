"""1С РеализацияТоваровУслуг (УТ 11, УТ 10.3, БП 3.0 OData / JSON push) -> canonical Shipment.

A shipment with a delivery address that ships no customer order also gives its own
delivery task (flow 2); a shipment of an order is delivered by the order's task."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical
from mmstream.models.delivery_task import DeliveryTask
from mmstream.models.shipment import Shipment
from stages.normalize.derive_delivery_task import delivery_task_from_shipment, needs_delivery
from stages.normalize.oddities import text
from stages.normalize.onec_common import first_ref
from stages.normalize.onec_document import deletion, goods_lines, header, includes_vat, ref_to
from stages.normalize.registry import Context

TOPICS = ("raw.onec.shipment",)

#: Sections with goods or services; ВозвратнаяТара (returnable packaging) is not a sale.
SECTIONS = ("Товары", "Услуги")


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One shipment record -> its canonical version (Unnormalizable names the bad field)."""
    fields, deleted = header(value, ctx)
    if deleted:
        return deletion(Shipment, fields)
    shipment = Shipment(
        **fields,
        counterparty_id=ref_to(value, "counterparty", "Контрагент"),
        partner_id=first_ref(value, "Партнер_Key"),
        contract_id=first_ref(value, "Договор_Key", "ДоговорКонтрагента_Key"),
        warehouse_id=ref_to(value, "warehouse", "Склад"),
        order_id=ref_to(value, "customer_order", "ЗаказКлиента", "Сделка"),
        status=text(value.get("Статус")),
        delivery_address=text(value.get("АдресДоставки")),
        amount_includes_vat=includes_vat(value),
        lines=goods_lines(value, *SECTIONS),
    )
    return [shipment, *delivery_of(shipment, ctx)]


def delivery_of(shipment: Shipment, ctx: Context) -> list[DeliveryTask]:
    """The delivery task of a shipment without an order (none for a shipment of an order,
    or one the customer collects)."""
    if shipment.order_id is not None or not needs_delivery(
        shipment.delivery_address, address_required=ctx.delivery_needs_address
    ):
        return []
    return [
        delivery_task_from_shipment(
            shipment_id=shipment.id,
            version=shipment.version,
            number=shipment.number,
            counterparty_id=shipment.counterparty_id,
            warehouse_id=shipment.warehouse_id,
            delivery_address=shipment.delivery_address,
            amount_to_collect=shipment.amount,
            deleted=shipment.deleted,
        )
    ]
