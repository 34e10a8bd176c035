"""1С РеализацияТоваровУслуг (УТ 11, УТ 10.3, БП 3.0 OData / JSON push) -> canonical Shipment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical
from mmstream.models.shipment import Shipment
from streams.normalize.oddities import text
from streams.normalize.onec_common import first_ref
from streams.normalize.onec_document import deletion, goods_lines, header, includes_vat, ref_to
from streams.normalize.registry import Context

TOPICS = ("raw.onec.shipment",)

#: Sections with goods or services; ВозвратнаяТара (returnable packaging) is not a sale.
SECTIONS = ("Товары", "Услуги")


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One shipment record -> its canonical version (Unnormalizable names the bad field)."""
    fields, deleted = header(value, ctx)
    if deleted:
        return deletion(Shipment, fields)
    return [Shipment(
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
    )]
