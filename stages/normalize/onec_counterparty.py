"""1С Контрагенты (УТ 11, УТ 10.3) and Партнеры (УТ 11) -> canonical Counterparty. Pure.

Both catalogs arrive on ``raw.onec.counterparty`` with nothing in the headers telling them
apart, so the record decides (:func:`stages.normalize.onec_common.object_kind`): an
explicit object name, else the fields only one of them has — Контрагенты carry ``ИНН`` (and
in УТ 11 ``Партнер_Key``), Партнеры the relationship flags ``Клиент`` / ``Конкурент`` /
``ПрочиеОтношения``.

Contracts: 1С keeps them in their own catalog (ДоговорыКонтрагентов); the bridge takes it
as its own entity (raw.onec.contract -> :mod:`stages.normalize.onec_contract`, each contract
naming its counterparty), since a contract record carries nothing else of the counterparty
and a counterparty version built from it would blank the rest. Besides, a Контрагенты record
our push extension enriches with a ``Договоры`` (or
``ДоговорыКонтрагента``) list — lines with ``LineNumber``, ``Ref_Key``, ``Номер``/``Code``,
``Description``, ``Дата``, ``СрокДействия``/``ДатаОкончанияДействия``, ``ВидДоговора``,
``Организация_Key``, ``ВалютаВзаиморасчетов_Key``, ``DeletionMark`` — fills ``contracts``.
:func:`from_commerceml_party` maps the counterparties a CommerceML order names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from typing import Any
from uuid import UUID

from mmstream.models.base import derived_id
from mmstream.models.counterparty import Contract, Counterparty
from stages.normalize import onec_common as common
from stages.normalize.oddities import Unnormalizable, line_number, onec_date, ref, text, yes_no
from stages.normalize.registry import Context

TOPICS = ("raw.onec.counterparty",)

_NAMES = {"Контрагенты": "legal_entity", "Партнеры": "partner"}
_MARKERS = {
    "legal_entity": ("ИНН", "Партнер_Key"),
    "partner": ("Клиент", "Конкурент", "ПрочиеОтношения"),
}
_CONTRACT_LISTS = ("Договоры", "ДоговорыКонтрагента", "ДоговорыКонтрагентов")


def normalize(
    value: dict[str, Any], headers: Mapping[str, str], ctx: Context
) -> list[Counterparty]:
    """One Контрагенты or Партнеры record -> one Counterparty."""
    record = common.record_of(value)
    ident = common.identity(record)
    if common.is_deletion(record):
        return [Counterparty(**ident)]
    kind = common.object_kind(record, _NAMES, _MARKERS, "counterparty")
    contacts = common.contact_info(record)
    is_customer = yes_no(record.get("Покупатель"), "Покупатель")
    if is_customer is None:
        is_customer = yes_no(record.get("Клиент"), "Клиент")
    return [
        Counterparty(
            **ident,
            **common.catalog_fields(record),
            kind=kind,
            full_name=text(record.get("НаименованиеПолное")),
            legal_form=common.legal_form(record.get("ЮрФизЛицо")),
            inn=text(record.get("ИНН")),
            kpp=text(record.get("КПП")),
            partner_id=ref(record.get("Партнер_Key"), "Партнер_Key"),
            head_id=_head(record, ident["id"]),
            is_customer=is_customer,
            is_supplier=yes_no(record.get("Поставщик"), "Поставщик"),
            manager_id=common.first_ref(
                record, "ОсновнойМенеджер_Key", "ОсновнойМенеджерПокупателя_Key"
            ),
            phones=contacts.phones,
            emails=contacts.emails,
            address=contacts.addresses[0] if contacts.addresses else "",
            comment=text(record.get("Комментарий")),
            main_contract_id=ref(
                record.get("ОсновнойДоговорКонтрагента_Key"), "ОсновнойДоговорКонтрагента_Key"
            ),
            contracts=_contracts(record, ctx),
        )
    ]


def _head(record: Mapping[str, Any], own: UUID) -> UUID | None:
    # 1С points a head counterparty at itself: that is "no head", not a self-reference.
    head = ref(record.get("ГоловнойКонтрагент_Key"), "ГоловнойКонтрагент_Key")
    return None if head == own else head


def _contracts(record: Mapping[str, Any], ctx: Context) -> tuple[Contract, ...]:
    present = [name for name in _CONTRACT_LISTS if record.get(name) not in (None, [], "")]
    if not present:
        return ()
    if len(present) > 1:
        raise Unnormalizable(f"contracts: both {present[0]} and {present[1]} are filled")
    name = present[0]
    lines = record[name]
    if not isinstance(lines, list):
        raise Unnormalizable(f"{name}: a tabular section must be a list")
    rows = []
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            raise Unnormalizable(f"{name}.{index}: a line must be an object")
        where = f"{name}.{index}"
        contract_id = ref(line.get("Ref_Key"), f"{where}.Ref_Key")
        if contract_id is None:
            raise Unnormalizable(f"{where}.Ref_Key: a contract without its reference")
        rows.append(
            (
                line_number(line.get("LineNumber")),
                Contract(
                    id=contract_id,
                    number=common.first_text(line, "Номер", "Code"),
                    name=text(line.get("Description")),
                    signed_on=onec_date(line.get("Дата"), ctx.onec_tz, f"{where}.Дата"),
                    valid_until=_valid_until(line, ctx, where),
                    kind=text(line.get("ВидДоговора")),
                    organization_id=ref(line.get("Организация_Key"), f"{where}.Организация_Key"),
                    currency_id=ref(
                        line.get("ВалютаВзаиморасчетов_Key"), f"{where}.ВалютаВзаиморасчетов_Key"
                    ),
                    deleted=bool(yes_no(line.get("DeletionMark"), f"{where}.DeletionMark")),
                ),
            )
        )
    return tuple(contract for _, contract in sorted(rows, key=lambda row: row[0]))


def _valid_until(line: Mapping[str, Any], ctx: Context, where: str) -> date | None:
    for field in ("СрокДействия", "ДатаОкончанияДействия"):
        day = onec_date(line.get(field), ctx.onec_tz, f"{where}.{field}")
        if day is not None:
            return day
    return None


def from_commerceml_party(party: Mapping[str, Any]) -> Counterparty:
    """A counterparty a CommerceML order names (``{"id", "name", "full_name", "role", "inn",
    "kpp"}``, see connectors/commerceml/orders.py) -> Counterparty (kind legal_entity).

    The ``Ид`` of a 1С Контрагенты is its GUID; a site's own id (not a GUID) gets a derived
    id. The version is a hash of the fields, so an unchanged party is a duplicate.
    """
    raw_id = text(party.get("id"))
    if not raw_id:
        raise Unnormalizable("counterparty Ид: missing")
    try:
        guid: UUID | None = UUID(raw_id)
    except ValueError:
        guid = None
    fields = {
        "name": text(party.get("name")),
        "full_name": text(party.get("full_name")),
        "inn": text(party.get("inn")),
        "kpp": text(party.get("kpp")),
    }
    # A site may send only the full name: it is still the counterparty's name.
    fields["name"] = fields["name"] or fields["full_name"]
    if not fields["name"]:
        raise Unnormalizable(f"counterparty {raw_id}: neither Наименование nor ПолноеНаименование")
    digest = hashlib.sha256("\x1f".join([raw_id, *fields.values()]).encode()).hexdigest()[:32]
    return Counterparty(
        id=guid or derived_id("counterparty", "commerceml", raw_id),
        source="commerceml",
        version=f"h:{digest}",
        external_ids={"onec": str(guid)} if guid else {},
        kind="legal_entity",
        **fields,
    )
