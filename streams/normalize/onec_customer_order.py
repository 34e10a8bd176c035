"""1С customer orders -> canonical CustomerOrder: ЗаказКлиента (УТ 11) and ЗаказПокупателя
(УТ 10.3) in the OData / JSON push shape, and CommerceML orders (``"_source":
"commerceml"``, see commerceml_customer_order.py), which share the raw topic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical
from mmstream.models.customer_order import CustomerOrder
from streams.normalize.commerceml_customer_order import to_order
from streams.normalize.oddities import onec_datetime, text
from streams.normalize.onec_common import first_ref, record_of
from streams.normalize.onec_document import deletion, goods_lines, header, includes_vat, ref_to
from streams.normalize.registry import Context

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
    return [CustomerOrder(
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
    )]
