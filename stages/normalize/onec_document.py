"""What every 1С document normalizer reads the same way: the header (Номер, Дата, Проведен,
Организация, Валюта, СуммаДокумента), goods lines, payment lines and composite references
to other documents. Pure; no TOPICS (not a normalizer itself).

УТ 11, УТ 10.3 and БП 3.0 name some attributes differently (Валюта / ВалютаДокумента,
Договор / ДоговорКонтрагента, Сделка / ЗаказКлиента); each reader takes every name of one
thing. An attribute of a composite type comes as ``X`` + ``X_Type``; its type tells which
canonical entity the reference points at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

from connectors.onec.objects import lookup
from mmstream.models.base import Canonical
from mmstream.models.lines import MONEY_SCALE, GoodsLine, PaymentLine
from stages.normalize.oddities import (
    Unnormalizable,
    composite_ref,
    decimal,
    line_number,
    onec_datetime,
    ref,
    text,
    yes_no,
)
from stages.normalize.onec_common import first_ref, first_text, identity, is_deletion, record_of
from stages.normalize.registry import Context

_VAT_NAME = re.compile(r"^НДС(\d+)(?:_\d+)?$")


def typed_ref(record: Mapping[str, Any], name: str) -> tuple[UUID | None, str | None]:
    """A reference that is plain (``X_Key``: type None) in one configuration and composite
    (``X`` + ``X_Type``) in another -> (id, entity the 1С type maps to, or the 1С type)."""
    guid, kind = composite_ref(record, name)
    if guid is None or kind is None:
        return guid, None
    obj = lookup(kind)
    return guid, obj.entity if obj is not None else kind


def ref_to(record: Mapping[str, Any], entity: str, *names: str) -> UUID | None:
    """The first filled reference among ``names`` that points at ``entity``: a plain
    ``X_Key`` (its type is fixed by the configuration) or a composite of that entity's type."""
    for name in names:
        guid, kind = typed_ref(record, name)
        if guid is not None and kind in (None, entity):
            return guid
    return None


def document_ref(record: Mapping[str, Any], *names: str) -> tuple[UUID | None, str]:
    """The first filled composite document reference -> (id, 1С type such as
    ``Document_ЗаказКлиента``; empty when the attribute is a plain reference)."""
    for name in names:
        guid, kind = composite_ref(record, name)
        if guid is not None:
            return guid, kind or ""
    return None, ""


def kind_entity(kind: str) -> str | None:
    """The canonical entity of a 1С type name (``Document_РеализацияТоваровУслуг`` -> shipment)."""
    obj = lookup(kind) if kind else None
    return obj.entity if obj is not None else None


def header(value: Any, ctx: Context) -> tuple[dict[str, Any], bool]:
    """(AccountingDocument fields, is a deletion record) of a 1С document record.

    A deletion record has nothing but its identity; every other record must have a filled
    ``Date``.
    """
    record = record_of(value)
    fields = identity(record)
    if is_deletion(record):
        return fields, True
    moment = onec_datetime(record.get("Date"), ctx.onec_tz, "Date")
    if moment is None:
        raise Unnormalizable("Date: missing or the empty date 0001-01-01T00:00:00")
    fields.update(
        number=text(record.get("Number")),
        date=moment,
        posted=bool(yes_no(record.get("Posted"), "Posted")),
        organization_id=first_ref(record, "Организация_Key"),
        amount=decimal(record.get("СуммаДокумента"), "СуммаДокумента", MONEY_SCALE),
        currency_id=first_ref(record, "Валюта_Key", "ВалютаДокумента_Key"),
        responsible_id=first_ref(record, "Ответственный_Key", "Менеджер_Key"),
        comment=text(record.get("Комментарий")),
        operation=first_text(record, "ХозяйственнаяОперация", "ВидОперации"),
    )
    return fields, False


def includes_vat(record: Mapping[str, Any]) -> bool | None:
    """Whether prices include VAT (УТ 11 ЦенаВключаетНДС, УТ 10.3 / БП СуммаВключаетНДС)."""
    for name in ("ЦенаВключаетНДС", "СуммаВключаетНДС"):
        if name in record:
            return yes_no(record.get(name), name)
    return None


def section(record: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """A tabular section's lines, ordered by LineNumber; absent or empty -> []."""
    lines = record.get(name)
    if lines in (None, "", [], {}):
        return []
    if not isinstance(lines, list):
        raise Unnormalizable(f"{name}: a tabular section must be a list")
    numbered = []
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            raise Unnormalizable(f"{name}.{index}: a line must be an object")
        try:
            numbered.append((line_number(line.get("LineNumber")), line))
        except Unnormalizable as exc:
            raise Unnormalizable(f"{name}.{index}: {exc}") from exc
    return [line for _, line in sorted(numbered, key=lambda pair: pair[0])]


def vat(line: Mapping[str, Any]) -> tuple[str, UUID | None, Decimal | None]:
    """(rate name, rate reference, percent) of a line.

    БП / УТ 10.3 / early УТ 11 send the enumeration value (``НДС20``, ``НДС18_118``,
    ``БезНДС``); УТ 11.5+ a СтавкиНДС reference (``СтавкаНДС_Key``), whose percent is not
    in the record.
    """
    rate_id = ref(line.get("СтавкаНДС_Key"), "СтавкаНДС_Key")
    name = text(line.get("СтавкаНДС"))
    match = _VAT_NAME.match(name)
    return name, rate_id, Decimal(match.group(1)) if match else None


def goods_lines(record: Mapping[str, Any], *sections: str) -> tuple[GoodsLine, ...]:
    """The lines of the goods/services ``sections``, section by section, in LineNumber order."""
    out = []
    for name in sections:
        for line in section(record, name):
            try:
                out.append(_goods_line(name, line))
            except Unnormalizable as exc:
                raise Unnormalizable(f"{name} line {line.get('LineNumber')}: {exc}") from exc
    return tuple(out)


def _goods_line(name: str, line: Mapping[str, Any]) -> GoodsLine:
    rate, rate_id, percent = vat(line)
    return GoodsLine(
        section=name,
        line_number=line_number(line.get("LineNumber")),
        product_id=first_ref(line, "Номенклатура_Key"),
        characteristic_id=first_ref(line, "Характеристика_Key", "ХарактеристикаНоменклатуры_Key"),
        content=first_text(line, "Содержание"),
        unit_id=first_ref(line, "ЕдиницаИзмерения_Key", "Упаковка_Key"),
        quantity=decimal(line.get("Количество"), "Количество"),
        price=decimal(line.get("Цена"), "Цена"),
        amount=decimal(line.get("Сумма"), "Сумма", MONEY_SCALE),
        vat_rate=rate,
        vat_rate_id=rate_id,
        vat_percent=percent,
        vat_amount=decimal(line.get("СуммаНДС"), "СуммаНДС", MONEY_SCALE),
        warehouse_id=ref_to(line, "warehouse", "Склад"),
        order_id=ref_to(line, "customer_order", "ЗаказКлиента", "Заказ"),
        cancelled=bool(yes_no(line.get("Отменено"), "Отменено")),
    )


def payment_lines(record: Mapping[str, Any], name: str) -> tuple[PaymentLine, ...]:
    """A payment breakdown (РасшифровкаПлатежа, ОплатаПоставщикам) in LineNumber order."""
    out = []
    for line in section(record, name):
        try:
            out.append(_payment_line(line))
        except Unnormalizable as exc:
            raise Unnormalizable(f"{name} line {line.get('LineNumber')}: {exc}") from exc
    return tuple(out)


_SETTLEMENT_DOCS = (
    "Заказ",
    "ЗаказКлиента",
    "Сделка",
    "ДокументРасчетовСКонтрагентом",
    "ДокументРасчетов",
)


def _payment_line(line: Mapping[str, Any]) -> PaymentLine:
    base_id, base_kind = document_ref(line, *_SETTLEMENT_DOCS)
    docs = [composite_ref(line, name) for name in _SETTLEMENT_DOCS]
    by_entity: dict[str, UUID] = {}
    for guid, kind in docs:
        entity = kind_entity(kind or "")
        if guid is not None and entity is not None:
            by_entity.setdefault(entity, guid)
    amount = line.get("Сумма") if "Сумма" in line else line.get("СуммаПлатежа")
    return PaymentLine(
        line_number=line_number(line.get("LineNumber")),
        order_id=by_entity.get("customer_order"),
        shipment_id=by_entity.get("shipment"),
        base_document_id=base_id,
        base_document_kind=base_kind,
        counterparty_id=ref_to(line, "counterparty", "Партнер", "Контрагент"),
        contract_id=first_ref(line, "Договор_Key", "ДоговорКонтрагента_Key"),
        amount=decimal(amount, "Сумма", MONEY_SCALE),
    )


def cash_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The CashDocument fields of a ПКО / РКО beyond the header.

    The courier or accountable person is ПодотчетноеЛицо (УТ 11) or, in УТ 10.3, the
    composite Контрагент when its type is ФизическиеЛица. The order / shipment paid is the
    base document when it is one, else the single one the payment lines name (several
    different ones: see the lines).
    """
    payments = payment_lines(record, "РасшифровкаПлатежа")
    base_id, base_kind = document_ref(record, "ДокументОснование")
    base_entity = kind_entity(base_kind)
    person, person_kind = typed_ref(record, "Контрагент")
    employee_id = first_ref(record, "ПодотчетноеЛицо_Key", "ФизЛицо_Key") or (
        person if person_kind == "employee" else None
    )
    return {
        "cash_desk_id": first_ref(record, "Касса_Key"),
        "counterparty_id": ref_to(record, "counterparty", "Контрагент"),
        "contract_id": first_ref(record, "Договор_Key", "ДоговорКонтрагента_Key"),
        "employee_id": employee_id,
        "base_document_id": base_id,
        "base_document_kind": base_kind,
        "order_id": base_id
        if base_entity == "customer_order"
        else _only(p.order_id for p in payments),
        "shipment_id": base_id
        if base_entity == "shipment"
        else _only(p.shipment_id for p in payments),
        "basis": text(record.get("Основание")),
        "payments": payments,
    }


def _only(ids: Any) -> UUID | None:
    found = {guid for guid in ids if guid is not None}
    return found.pop() if len(found) == 1 else None


def deletion(model: type[Canonical], fields: dict[str, Any]) -> list[Canonical]:
    """The canonical version of a document that vanished from 1С: identity, deleted."""
    return [model(**{**fields, "deleted": True})]
