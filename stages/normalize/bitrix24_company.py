"""Bitrix24 companies (``raw.bitrix24.company``, ``crm.company.get``) -> canonical
Counterparty of kind ``partner``. Pure.

Bitrix24 owns nothing of a counterparty 1С created: for a company whose ``ORIGIN_ID`` is a
1С GUID this version only adds the crosswalk; a company born in Bitrix24 without one gets a
derived id (:mod:`stages.normalize.bitrix24_crm`). INN/KPP live in Bitrix24 requisites
(``crm.requisite.*``), not on the company record, so they stay empty here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.counterparty import Counterparty
from stages.normalize import bitrix24_crm as crm
from stages.normalize.oddities import Unnormalizable, text
from stages.normalize.registry import Context

TOPICS = ("raw.bitrix24.company",)
KIND = "company"


def normalize(
    value: dict[str, Any] | None, headers: Mapping[str, str], ctx: Context
) -> list[Counterparty]:
    """One company (or its tombstone) -> one Counterparty."""
    if crm.is_tombstone(value):
        return [crm.tombstone(value, headers, KIND, ctx)]
    if not isinstance(value, dict):
        raise Unnormalizable(f"expected a JSON object, got {type(value).__name__}")
    company_type = text(value.get("COMPANY_TYPE")).upper()
    return [
        Counterparty(
            **crm.identity(value, KIND, ctx),
            kind="partner",
            name=text(value.get("TITLE")),
            # Only the two stock types say something; PARTNER/COMPETITOR/OTHER/custom say nothing.
            is_customer=True if company_type == "CUSTOMER" else None,
            is_supplier=True if company_type == "SUPPLIER" else None,
            phones=crm.multifield(value, "PHONE"),
            emails=crm.multifield(value, "EMAIL"),
            address=crm.address(value),
            comment=text(value.get("COMMENTS")),
        )
    ]
