"""1С Пользователи, ФизическиеЛица and Сотрудники -> canonical Employee. Pure.

The three catalogs share ``raw.onec.employee`` and the headers do not say which one a
record is from, so the record decides (:func:`stages.normalize.onec_common.object_kind`):
an explicit object name, else the fields only one of them has — users
``ИдентификаторПользователяИБ`` / ``Недействителен`` / ``Служебный`` (УТ 11) or
``ФизЛицо_Key`` (УТ 10.3); employees ``ВАрхиве`` / ``ГоловнаяОрганизация_Key`` /
``ГоловнойСотрудник_Key``; persons ``ДатаРождения`` / ``Пол``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.employee import Employee
from stages.normalize import onec_common as common
from stages.normalize.oddities import onec_date, ref, text, yes_no
from stages.normalize.registry import Context

TOPICS = ("raw.onec.employee",)

_NAMES = {"Пользователи": "user", "ФизическиеЛица": "person", "Сотрудники": "employee"}
_MARKERS = {
    "user": ("ИдентификаторПользователяИБ", "Недействителен", "Служебный", "ФизЛицо_Key"),
    "employee": ("ВАрхиве", "ГоловнаяОрганизация_Key", "ГоловнойСотрудник_Key"),
    "person": ("ДатаРождения", "Пол"),
}


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Employee]:
    """One Пользователи / ФизическиеЛица / Сотрудники record -> one Employee."""
    record = common.record_of(value)
    ident = common.identity(record)
    if common.is_deletion(record):
        return [Employee(**ident)]
    kind = common.object_kind(record, _NAMES, _MARKERS, "employee")
    fields = common.catalog_fields(record)
    contacts = common.contact_info(record)
    return [
        Employee(
            **ident,
            kind=kind,
            code=fields["code"],
            name=fields["name"],
            person_id=common.first_ref(record, "ФизическоеЛицо_Key", "ФизЛицо_Key"),
            organization_id=ref(record.get("ГоловнаяОрганизация_Key"), "ГоловнаяОрганизация_Key"),
            department_id=ref(record.get("Подразделение_Key"), "Подразделение_Key"),
            is_active=_active(record, kind),
            birth_date=onec_date(record.get("ДатаРождения"), ctx.onec_tz, "ДатаРождения"),
            inn=text(record.get("ИНН")),
            phones=contacts.phones,
            emails=contacts.emails,
        )
    ]


def _active(record: Mapping[str, Any], kind: str) -> bool | None:
    field = {"user": "Недействителен", "employee": "ВАрхиве"}.get(kind)
    inactive = yes_no(record.get(field), field) if field else None
    return None if inactive is None else not inactive
