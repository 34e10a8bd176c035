"""1С returns from customers (``raw.onec.return``: УТ 11 ВозвратТоваровОтКлиента, УТ 10.3
ВозвратТоваровОтПокупателя; OData / JSON push) -> canonical Return. Pure.

1С owns the document: the version carries the header, the references and the goods lines,
and leaves the courier's fields (Bitrix24) and the return status (middleware) to their owners.
The shipment returned is ДокументРеализации (УТ 11, header or lines) or a shipment-typed
ДокументОснование / ДокументПартии; the order is ЗаказКлиента (УТ 11) or Сделка (УТ 10.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from mmstream.models.base import Canonical
from mmstream.models.return_ import Return
from stages.normalize.onec_common import first_ref
from stages.normalize.onec_document import (
    deletion,
    goods_lines,
    header,
    includes_vat,
    ref_to,
    section,
)
from stages.normalize.registry import Context

TOPICS = ("raw.onec.return",)

SECTIONS = ("Товары",)
_SHIPMENT_REFS = ("ДокументРеализации", "ДокументОснование", "ДокументПартии")


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One return record -> its canonical version (Unnormalizable names the bad field)."""
    fields, deleted = header(value, ctx)
    if deleted:
        return deletion(Return, fields)
    return [
        Return(
            **fields,
            counterparty_id=ref_to(value, "counterparty", "Контрагент"),
            partner_id=first_ref(value, "Партнер_Key"),
            contract_id=first_ref(value, "Договор_Key", "ДоговорКонтрагента_Key"),
            warehouse_id=ref_to(value, "warehouse", "Склад", "СкладОрдер"),
            shipment_id=ref_to(value, "shipment", *_SHIPMENT_REFS) or _lines_shipment(value),
            order_id=ref_to(value, "customer_order", "ЗаказКлиента", "Сделка"),
            amount_includes_vat=includes_vat(value),
            lines=goods_lines(value, *SECTIONS),
        )
    ]


def _lines_shipment(value: Mapping[str, Any]) -> UUID | None:
    # A return of one sale names it on every line (УТ 11 Товары.ДокументРеализации); lines of
    # several sales leave the header without one.
    found = {
        ref_to(line, "shipment", *_SHIPMENT_REFS)
        for name in SECTIONS
        for line in section(value, name)
    }
    found.discard(None)
    return found.pop() if len(found) == 1 else None
