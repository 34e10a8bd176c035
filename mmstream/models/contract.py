"""Canonical counterparty contract (1С ДоговорыКонтрагентов, УТ 11 and УТ 10.3). 1С owns it.

1С keeps contracts in their own catalog, each owned by a counterparty (``Owner_Key``); they
change on their own (a new contract, an extended term) without the counterparty changing.
So a contract is its own entity that names its counterparty, not a line rewritten into the
counterparty: a contract record carries nothing else of its owner, and a counterparty
version built from it would blank the owner's fields. ``Counterparty.contracts`` stays for
the push extension that sends a counterparty together with its contracts; both use the
same ids (the contract's Ref_Key).
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical


class CounterpartyContract(Canonical):
    """A contract with a counterparty: its number, date, kind, term and currency."""

    ENTITY: ClassVar[str] = "contract"

    counterparty_id: UUID | None = Field(
        None,
        description="the counterparty the contract is with (Owner_Key)",
        json_schema_extra={"ref": "counterparty"},
    )
    code: str = Field("", description="1С Code")
    number: str = Field(
        "", description="contract number (НомерДоговора, Номер; Code when 1С has no number)"
    )
    name: str = Field("", description="contract name (Description)")
    signed_on: date | None = Field(None, description="contract date (ДатаДоговора, Дата)")
    valid_until: date | None = Field(
        None,
        description="end of validity (СрокДействия / ДатаОкончанияДействия), none = open-ended",
    )
    kind: str = Field(
        "", description="contract kind as 1С names it (ВидДоговора: СПокупателем, СПоставщиком, …)"
    )
    organization_id: UUID | None = Field(
        None,
        description="our organization that signed it (Организация_Key)",
        json_schema_extra={"ref": "organization"},
    )
    partner_id: UUID | None = Field(
        None,
        description="the partner of the counterparty (УТ 11 Партнер_Key)",
        json_schema_extra={"ref": "counterparty"},
    )
    currency_id: UUID | None = Field(
        None,
        description="settlement currency (ВалютаВзаиморасчетов_"
        "Key: 1С Валюты Ref_Key; currencies are "
        "not a canonical entity)",
    )
    is_folder: bool = Field(False, description="a group of contracts, not a contract")
    comment: str = Field("", description="free-text comment (Комментарий)")
