"""Bitrix24 contacts (``raw.bitrix24.contact``, ``crm.contact.get``) -> canonical
Counterparty of kind ``contact``. Pure.

A contact is a person: a private customer or a company's contact person (``COMPANY_ID``
becomes ``partner_id``). Bitrix24 owns nothing of a counterparty 1С created: for a contact
whose ``ORIGIN_ID`` is a 1С GUID this version only adds the crosswalk; a contact born in
Bitrix24 gets a derived id (:mod:`stages.normalize.bitrix24_crm`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.counterparty import Counterparty
from stages.normalize import bitrix24_crm as crm
from stages.normalize.oddities import Unnormalizable, text
from stages.normalize.registry import Context

TOPICS = ("raw.bitrix24.contact",)
KIND = "contact"


def normalize(
    value: dict[str, Any] | None, headers: Mapping[str, str], ctx: Context
) -> list[Counterparty]:
    """One contact (or its tombstone) -> one Counterparty."""
    if crm.is_tombstone(value):
        return [crm.tombstone(value, headers, KIND, ctx)]
    if not isinstance(value, dict):
        raise Unnormalizable(f"expected a JSON object, got {type(value).__name__}")
    return [
        Counterparty(
            **crm.identity(value, KIND, ctx),
            kind="contact",
            # Фамилия Имя Отчество: the order 1С and Russian documents use.
            name=" ".join(
                p for p in (text(value.get(f)) for f in ("LAST_NAME", "NAME", "SECOND_NAME")) if p
            ),
            partner_id=crm.counterparty_ref("company", value.get("COMPANY_ID")),
            phones=crm.multifield(value, "PHONE"),
            emails=crm.multifield(value, "EMAIL"),
            address=crm.address(value),
            comment=text(value.get("COMMENTS")),
        )
    ]
