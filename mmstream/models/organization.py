"""Canonical organization (1С Организации): our own legal entities. 1С owns them."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical


class Organization(Canonical):
    """One of our legal entities documents are issued by (1С Организации)."""

    ENTITY: ClassVar[str] = "organization"

    code: str = Field("", description="1С Code")
    name: str = Field(description="short name (1С Description)")
    full_name: str = Field("", description="full legal name (НаименованиеПолное)")
    legal_form: str = Field(
        "",
        description="legal_entity, individual or entrepreneur; another "
        "1С ЮрФизЛицо value as 1С names it",
    )
    inn: str = Field("", description="taxpayer number (ИНН)")
    kpp: str = Field("", description="tax registration reason code (КПП)")
    ogrn: str = Field(
        "",
        description="state registration number (ОГРН / ОсновнойГосударственный"
        "РегистрационныйНомер)",
    )
    prefix: str = Field("", description="document number prefix (Префикс)")
    head_id: UUID | None = Field(
        None,
        description="head organization of a separate subdivision (ГоловнаяОрганизация_Key)",
        json_schema_extra={"ref": "organization"},
    )
    address: str = Field(
        "",
        description="legal or actual address as text, when the record carries contact information",
    )
    phones: tuple[str, ...] = Field((), description="phone numbers, in source order")
