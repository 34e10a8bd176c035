"""Canonical counterparty: 1С Партнеры and Контрагенты, Bitrix24 companies and contacts.

УТ 11 splits a customer in two: the *partner* (Партнеры, the business relationship
couriers and managers deal with) and its *legal entities* (Контрагенты: the parties that
sign contracts and appear on documents, each pointing at its partner). УТ 10.3 has only
Контрагенты, which play both roles. Bitrix24 has companies and contacts (persons). All of
them are one entity, told apart by ``kind``; ``partner_id`` links a legal entity or a
contact person to its partner.

1С owns every field. Bitrix24 owns nothing of a counterparty 1С created: its versions of
such a counterparty only contribute ``external_ids`` (the crosswalk).
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import ConfigDict, Field

from mmstream.models.base import Canonical
from mmstream.models.bounds import Bounded

CounterpartyKind = Literal["partner", "legal_entity", "contact"]


class Contract(Bounded):
    """A contract with the counterparty (1С ДоговорыКонтрагентов), when the record carries it."""

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(description="the contract's 1С Ref_Key")
    number: str = Field("", description="contract number (Номер, or Code when 1С has no number)")
    name: str = Field("", description="contract name (Description)")
    signed_on: date | None = Field(None, description="contract date (Дата)")
    valid_until: date | None = Field(
        None,
        description="end of validity (СрокДействия / ДатаОкончанияДействия), none = open-ended",
    )
    kind: str = Field(
        "", description="contract kind as 1С names it (ВидДоговора: СПокупателем, СПоставщиком, …)"
    )
    organization_id: UUID | None = Field(
        None,
        description="our organization that signed it",
        json_schema_extra={"ref": "organization"},
    )
    currency_id: UUID | None = Field(
        None,
        description="settlement currency (1С Валюты Ref_Key; "
        "currencies are not a canonical entity)",
    )
    deleted: bool = Field(False, description="the contract is marked for deletion in 1С")


class Counterparty(Canonical):
    """A customer or supplier: a partner, one of its legal entities, or a contact person."""

    ENTITY: ClassVar[str] = "counterparty"

    kind: CounterpartyKind | None = Field(
        None,
        description="partner (1С Партнеры, Bitrix24 company), legal_entity (1С "
        "Контрагенты) or contact (a person: Bitrix24 contact); none only on "
        "a deletion record that names no more than the id",
    )
    code: str = Field("", description="1С Code")
    name: str = Field(
        "", description="name (1С Description, Bitrix24 TITLE or the contact's full name)"
    )
    full_name: str = Field("", description="full legal name (НаименованиеПолное)")
    legal_form: str = Field(
        "",
        description="legal_entity, individual, entrepreneur, "
        "foreign_legal_entity or government; another 1С "
        "ЮрФизЛицо value as 1С names it; empty when unknown",
    )
    inn: str = Field("", description="taxpayer number (ИНН), digits as 1С holds them")
    kpp: str = Field("", description="tax registration reason code (КПП)")
    partner_id: UUID | None = Field(
        None,
        description="the partner this legal entity or contact "
        "belongs to (Партнер_Key, Bitrix24 "
        "COMPANY_ID)",
        json_schema_extra={"ref": "counterparty"},
    )
    head_id: UUID | None = Field(
        None,
        description="head counterparty of a branch (ГоловнойКонтрагент_Key), none for itself",
        json_schema_extra={"ref": "counterparty"},
    )
    parent_id: UUID | None = Field(
        None,
        description="group in the 1С catalog (Parent_Key)",
        json_schema_extra={"ref": "counterparty"},
    )
    is_folder: bool = Field(False, description="a group of counterparties, not a counterparty")
    is_customer: bool | None = Field(
        None, description="buys from us (Покупатель / Клиент); none when the source does not say"
    )
    is_supplier: bool | None = Field(
        None, description="supplies us (Поставщик); none when the source does not say"
    )
    manager_id: UUID | None = Field(
        None,
        description="responsible manager (1С ОсновнойМенеджер_Key: a user)",
        json_schema_extra={"ref": "employee"},
    )
    phones: tuple[str, ...] = Field((), description="phone numbers as entered, in source order")
    emails: tuple[str, ...] = Field((), description="e-mail addresses, in source order")
    address: str = Field(
        "", description="delivery or actual address as text (the first address the source lists)"
    )
    comment: str = Field("", description="free-text comment (Комментарий, Bitrix24 COMMENTS)")
    main_contract_id: UUID | None = Field(
        None, description="default contract (ОсновнойДоговорКонтрагента_Key)"
    )
    contracts: tuple[Contract, ...] = Field(
        (), description="contracts, when the 1С record carries them (our push extension)"
    )
