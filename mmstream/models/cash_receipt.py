"""Canonical cash receipt (1С ПриходныйКассовыйОрдер, ПКО). 1С owns it."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmstream.models.document import CashDocument


class CashReceipt(CashDocument):
    """Cash taken in at a cash desk, e.g. a courier handing in a customer's payment."""

    ENTITY: ClassVar[str] = "cash_receipt"

    received_from: str = Field("", description="who handed the cash in, as printed (ПринятоОт)")
