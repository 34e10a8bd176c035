"""Canonical advance report (1С АвансовыйОтчет): how an accountable person spent an advance.
1С owns it."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.document import AccountingDocument
from mmstream.models.lines import GoodsLine, PaymentLine


class AdvanceReport(AccountingDocument):
    """An advance report (подотчёт) of an employee or courier, with its expense lines."""

    ENTITY: ClassVar[str] = "advance_report"

    employee_id: UUID | None = Field(
        None,
        description="accountable person (ПодотчетноеЛицо in УТ 11, ФизЛицо in УТ 10.3)",
        json_schema_extra={"ref": "employee"},
    )
    purpose: str = Field("", description="what the advance was for (НазначениеАванса)")
    advance_ids: tuple[UUID, ...] = Field(
        (),
        description="documents that issued the advance being reported (ВыданныеАвансы "
        "ДокументАванса; usually cash expenses)",
    )
    lines: tuple[GoodsLine, ...] = Field(
        (), description="goods bought and other expenses (Товары, ПрочиеРасходы / Прочее)"
    )
    supplier_payments: tuple[PaymentLine, ...] = Field(
        (), description="payments to suppliers out of the advance (ОплатаПоставщикам)"
    )
