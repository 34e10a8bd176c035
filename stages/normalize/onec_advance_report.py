"""1С АвансовыйОтчет (УТ 11, УТ 10.3 OData / JSON push) -> canonical AdvanceReport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.advance_report import AdvanceReport
from mmstream.models.base import Canonical
from stages.normalize.oddities import text
from stages.normalize.onec_common import first_ref
from stages.normalize.onec_document import (
    deletion,
    document_ref,
    goods_lines,
    header,
    payment_lines,
    section,
)
from stages.normalize.registry import Context

TOPICS = ("raw.onec.advance_report",)

#: Expense sections: goods bought, then other expenses (УТ 11 ПрочиеРасходы, УТ 10.3 Прочее).
SECTIONS = ("Товары", "ПрочиеРасходы", "Прочее")


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One advance report record -> its canonical version (Unnormalizable names the bad field)."""
    fields, deleted = header(value, ctx)
    if deleted:
        return deletion(AdvanceReport, fields)
    advances = []
    for line in section(value, "ВыданныеАвансы"):
        guid, _ = document_ref(line, "ДокументАванса")
        if guid is not None and guid not in advances:
            advances.append(guid)
    return [
        AdvanceReport(
            **fields,
            employee_id=first_ref(value, "ПодотчетноеЛицо_Key", "ФизЛицо_Key"),
            purpose=text(value.get("НазначениеАванса")),
            advance_ids=tuple(advances),
            lines=goods_lines(value, *SECTIONS),
            supplier_payments=payment_lines(value, "ОплатаПоставщикам"),
        )
    ]
