"""Values as the targets' contracts want them, shared by the egress actions. Pure."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def currency(value: Any, default: str = "RUB") -> str:
    """An ISO 4217 code (Bitrix24 CURRENCY_ID is one); anything else (``руб``, empty) is
    the default — the 1С contract accepts only ``^[A-Z]{3}$``."""
    code = str(value or "").strip().upper()
    return code if len(code) == 3 and code.isalpha() and code.isascii() else default


def money(value: Any) -> float | None:
    """A non-negative amount as the contract's number; None when there is none (or it is
    negative, which the contract refuses)."""
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return float(amount) if amount >= 0 else None
