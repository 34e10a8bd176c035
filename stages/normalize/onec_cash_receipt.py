"""1С ПриходныйКассовыйОрдер (ПКО; УТ 11, УТ 10.3 OData / JSON push) -> canonical CashReceipt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical
from mmstream.models.cash_receipt import CashReceipt
from stages.normalize.oddities import text
from stages.normalize.onec_document import cash_fields, deletion, header
from stages.normalize.registry import Context

TOPICS = ("raw.onec.cash_receipt",)


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One ПКО record -> its canonical version (Unnormalizable names the bad field)."""
    fields, deleted = header(value, ctx)
    if deleted:
        return deletion(CashReceipt, fields)
    return [CashReceipt(**fields, **cash_fields(value), received_from=text(value.get("ПринятоОт")))]
