"""Canonical employee / courier: 1С Пользователи, ФизическиеЛица and Сотрудники.

The three catalogs describe one person from three sides, each with its own GUID: the
*user* (Пользователи: who logs in, who is the manager or courier on a document), the
*person* (ФизическиеЛица: the human being) and the *employee* (Сотрудники, in bases with
HR: the employment). They stay three rows told apart by ``kind``; ``person_id`` links a
user or an employee to the person. 1С owns every field.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from mmstream.models.base import Canonical

EmployeeKind = Literal["user", "person", "employee"]


class Employee(Canonical):
    """A user, a person or an employee of ours; couriers are users."""

    ENTITY: ClassVar[str] = "employee"

    kind: EmployeeKind | None = Field(
        None,
        description="user (Пользователи), person (ФизическиеЛица) or employee "
        "(Сотрудники); none only on a deletion record",
    )
    code: str = Field("", description="1С Code")
    name: str = Field("", description="full name (1С Description)")
    person_id: UUID | None = Field(
        None,
        description="the person (ФизическоеЛицо_Key, УТ 10.3 ФизЛицо_Key)",
        json_schema_extra={"ref": "employee"},
    )
    organization_id: UUID | None = Field(
        None,
        description="employing organization (ГоловнаяОрганизация_Key)",
        json_schema_extra={"ref": "organization"},
    )
    department_id: UUID | None = Field(
        None, description="department (Подразделение_Key; departments are not a canonical entity)"
    )
    is_active: bool | None = Field(
        None,
        description="may work: not Недействителен (users), not "
        "ВАрхиве (employees); none when unknown",
    )
    birth_date: date | None = Field(None, description="date of birth (ДатаРождения)")
    inn: str = Field("", description="taxpayer number (ИНН)")
    phones: tuple[str, ...] = Field((), description="phone numbers, in source order")
    emails: tuple[str, ...] = Field((), description="e-mail addresses, in source order")
