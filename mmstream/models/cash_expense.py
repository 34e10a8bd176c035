"""Canonical cash expense (1С РасходныйКассовыйОрдер, РКО). 1С owns it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmstream.models.document import CashDocument


class CashExpense(CashDocument):
    """Cash paid out of a cash desk, e.g. an advance to a courier or change money."""

    ENTITY: ClassVar[str] = "cash_expense"

    issued_to: str = Field("", description="who received the cash, as printed (Выдать)")
