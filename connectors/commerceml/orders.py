"""Orders of the ``sale`` direction. Pure functions.

1С sends changed orders as ``Документ`` elements (``type=sale&mode=file``; under the root in
2.x, each inside a ``Контейнер`` in 3.x — parser.py reads both); each becomes a
``raw.onec.customer_order`` record keyed by the document's ``Ид``::

    {"_source": "commerceml", "id": Ид, "number": Номер, "date": Дата, "time": Время,
     "operation": ХозОперация, "role": Роль, "currency": Валюта, "rate": Курс,
     "amount": Сумма, "comment": Комментарий, "deleted": requisite ПометкаУдаления = true,
     "counterparties": [{"id", "name", "full_name", "role", "inn", "kpp"}],
     "items": [{"id", "product_id", "characteristic_id", "name", "unit", "price",
                "quantity", "amount", "requisites"}],
     "requisites": [{"name", "values": [...]}],
     "version": sha256 of the rest}

Amounts stay decimal strings. For ``type=sale&mode=query`` the bridge answers the orders
recorded for export (``commerceml_order_export``, one ``Документ`` element each) wrapped in
one ``КоммерческаяИнформация`` document (:func:`orders_document`): schema 2.08, encoded in
windows-1251 with the XML declaration saying so — what 1С-Битрикс, the site 1С's exchange is
built against, answers (sale.export.1c converts its answer to windows-1251 whatever the
site's charset); characters outside windows-1251 become character references, so nothing
is lost. :func:`export_element` builds the ``Документ`` of a courier's instant order
(ХозОперация ``Заказ товара``) or return (``Возврат товара``) in the element order of the
2.08 schema, as sale.export.1c writes it.

A document 1С sends back whose ``Ид`` is one the middleware exported is 1С's answer to it
(its number ``Номер по 1С``, ``Проведен``, ``ПометкаУдаления``, ``Статус заказа``):
:func:`answer_record` turns its order record into a ``raw.onec.exchange_result`` record
naming the exported entity (stages/normalize/commerceml_result.py reads it).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.commerceml.errors import InvalidEntry
from connectors.commerceml.parser import Entry, child_text
from connectors.commerceml.raw_records import (
    Record,
    decimal_text,
    make_record,
    named_values,
    split_id,
    unit_of,
)

#: The schema version of the ``sale&mode=query`` answer: 2.08 is what 1С УТ 10.3 and 11 ask
#: for at ``init`` (``version=2.08``) and read; a 2.x answer is read by every 2.x client.
SCHEMA_VERSION = "2.08"
#: The encoding of the ``sale&mode=query`` answer (module docstring).
QUERY_ENCODING = "windows-1251"
ORDER_OPERATION = "Заказ товара"
RETURN_OPERATION = "Возврат товара"
#: The raw topic of 1С's answers to exported documents, and its record entity.
ANSWER_TOPIC = "raw.onec.exchange_result"
ANSWER_ENTITY = "exchange_result"


def _decimal(elem: ET.Element, name: str, where: str) -> str | None:
    raw = child_text(elem, name)
    return decimal_text(raw, f"<{name}>", where) if raw else None


def order_record(entry: Entry) -> Record:
    """A ``Документ`` -> a ``raw.onec.customer_order`` record keyed by its ``Ид``."""
    doc = entry.element
    doc_id = child_text(doc, "Ид")
    if not doc_id:
        raise InvalidEntry("an order (Документ) without <Ид>")
    where = f"order {doc_id}"
    requisites = named_values(doc.find("ЗначенияРеквизитов"), "ЗначениеРеквизита")
    deleted = any(
        r["name"] == "ПометкаУдаления" and r["values"][:1] == ["true"] for r in requisites
    )
    items = []
    for item in doc.findall("Товары/Товар"):
        item_id = child_text(item, "Ид")
        product, characteristic = (
            split_id(item_id, "order line (Товар)") if item_id else (None, None)
        )
        items.append(
            {
                "id": item_id or None,
                "product_id": product,
                "characteristic_id": characteristic,
                "name": child_text(item, "Наименование"),
                "unit": unit_of(item.find("БазоваяЕдиница")),
                "price": _decimal(item, "ЦенаЗаЕдиницу", where),
                "quantity": _decimal(item, "Количество", where),
                "amount": _decimal(item, "Сумма", where),
                "requisites": named_values(item.find("ЗначенияРеквизитов"), "ЗначениеРеквизита"),
            }
        )
    content: dict[str, Any] = {
        "id": doc_id,
        "number": child_text(doc, "Номер"),
        "date": child_text(doc, "Дата"),
        "time": child_text(doc, "Время"),
        "operation": child_text(doc, "ХозОперация"),
        "role": child_text(doc, "Роль"),
        "currency": child_text(doc, "Валюта"),
        "rate": _decimal(doc, "Курс", where),
        "amount": _decimal(doc, "Сумма", where),
        "comment": child_text(doc, "Комментарий"),
        "deleted": deleted,
        "counterparties": [
            {
                "id": child_text(c, "Ид"),
                "name": child_text(c, "Наименование"),
                "full_name": child_text(c, "ПолноеНаименование"),
                "role": child_text(c, "Роль"),
                "inn": child_text(c, "ИНН"),
                "kpp": child_text(c, "КПП"),
            }
            for c in doc.findall("Контрагенты/Контрагент")
        ],
        "items": items,
        "requisites": requisites,
    }
    return make_record("customer_order", doc_id, content)


def orders_document(fragments: list[str], generated_at: datetime) -> tuple[bytes, list[int]]:
    """The ``sale&mode=query`` answer: one document holding the given ``Документ`` fragments
    (windows-1251, with the declaration). Returns the bytes and the indexes of fragments
    left out because they are not a well-formed ``Документ`` element (the caller logs them)."""
    root = ET.Element(
        "КоммерческаяИнформация",
        {
            "ВерсияСхемы": SCHEMA_VERSION,
            "ДатаФормирования": generated_at.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    broken = []
    for index, fragment in enumerate(fragments):
        try:
            elem = ET.fromstring(fragment)  # noqa: S314 — expat ≥ 2.4 bounds entity expansion
        except ET.ParseError:
            broken.append(index)
            continue
        if elem.tag != "Документ":
            broken.append(index)
            continue
        root.append(elem)
    # ElementTree writes characters the encoding lacks as character references. The
    # declaration is written as 1С-Битрикс writes it (double quotes).
    body = ET.tostring(root, encoding=QUERY_ENCODING, xml_declaration=False)
    return f'<?xml version="1.0" encoding="{QUERY_ENCODING}"?>\n'.encode("ascii") + body, broken


# -- documents the middleware exports ------------------------------------------------------


@dataclass(frozen=True)
class ExportParty:
    """The customer of an exported document: its 1С GUID and what 1С may match it by."""

    id: str
    name: str
    full_name: str = ""
    inn: str = ""
    kpp: str = ""


@dataclass(frozen=True)
class ExportLine:
    """One line of goods: the product's 1С GUID, name, price, quantity, amount. The unit is
    the product's base unit (1С finds the product by its Ид and keeps its own unit)."""

    product_id: str
    name: str
    price: Decimal
    quantity: Decimal
    amount: Decimal
    unit_code: str = "796"
    unit_name: str = "шт"
    unit_full_name: str = "Штука"
    unit_international: str = "PCE"


@dataclass(frozen=True)
class ExportDocument:
    """A courier's instant order or return as 1С loads it from a site. ``moment`` is the
    document's local time in 1С's time zone; ``currency`` as 1С's exchange names it."""

    id: str
    number: str
    moment: datetime
    operation: str
    currency: str
    amount: Decimal
    counterparty: ExportParty
    lines: tuple[ExportLine, ...]
    comment: str = ""
    requisites: tuple[tuple[str, str], ...] = ()


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):f}"


def _quantity(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _sub(parent: ET.Element, tag: str, value: str | None = None, **attrib: str) -> ET.Element:
    elem = ET.SubElement(parent, tag, attrib)
    if value is not None:
        elem.text = value
    return elem


def _requisites(parent: ET.Element, pairs: tuple[tuple[str, str], ...]) -> None:
    if not pairs:
        return
    holder = _sub(parent, "ЗначенияРеквизитов")
    for name, value in pairs:
        requisite = _sub(holder, "ЗначениеРеквизита")
        _sub(requisite, "Наименование", name)
        _sub(requisite, "Значение", value)


def export_element(doc: ExportDocument) -> ET.Element:
    """The ``Документ`` element of an exported document, children in the order of the 2.08
    schema (Ид, Номер, Дата, ХозОперация, Роль, Валюта, Курс, Сумма, Контрагенты, Время,
    Комментарий, Товары, ЗначенияРеквизитов)."""
    root = ET.Element("Документ")
    _sub(root, "Ид", doc.id)
    _sub(root, "Номер", doc.number)
    _sub(root, "Дата", doc.moment.strftime("%Y-%m-%d"))
    _sub(root, "ХозОперация", doc.operation)
    _sub(root, "Роль", "Продавец")
    _sub(root, "Валюта", doc.currency)
    _sub(root, "Курс", "1")
    _sub(root, "Сумма", _money(doc.amount))
    party = _sub(_sub(root, "Контрагенты"), "Контрагент")
    _sub(party, "Ид", doc.counterparty.id)
    _sub(party, "Наименование", doc.counterparty.name or doc.counterparty.id)
    _sub(
        party,
        "ПолноеНаименование",
        doc.counterparty.full_name or doc.counterparty.name or doc.counterparty.id,
    )
    if doc.counterparty.inn:
        _sub(party, "ИНН", doc.counterparty.inn)
    if doc.counterparty.kpp:
        _sub(party, "КПП", doc.counterparty.kpp)
    _sub(party, "Роль", "Покупатель")
    _sub(root, "Время", doc.moment.strftime("%H:%M:%S"))
    if doc.comment:
        _sub(root, "Комментарий", doc.comment)
    goods = _sub(root, "Товары")
    for line in doc.lines:
        item = _sub(goods, "Товар")
        _sub(item, "Ид", line.product_id)
        _sub(item, "Наименование", line.name or line.product_id)
        _sub(
            item,
            "БазоваяЕдиница",
            line.unit_name,
            Код=line.unit_code,
            НаименованиеПолное=line.unit_full_name,
            МеждународноеСокращение=line.unit_international,
        )
        _requisites(item, (("ВидНоменклатуры", "Товар"), ("ТипНоменклатуры", "Товар")))
        _sub(item, "ЦенаЗаЕдиницу", _money(line.price))
        _sub(item, "Количество", _quantity(line.quantity))
        _sub(item, "Сумма", _money(line.amount))
    _requisites(root, doc.requisites)
    return root


def export_fragment(doc: ExportDocument) -> str:
    """The ``Документ`` element as text, as the export queue stores it."""
    return ET.tostring(export_element(doc), encoding="unicode")


def answer_record(order: Record, entity: str) -> Record:
    """1С's document about one the middleware exported (``entity``: ``instant_order`` or
    ``return``) -> the ``raw.onec.exchange_result`` record carrying it, keyed by the Ид."""
    content = {k: v for k, v in order.payload.items() if k not in ("_source", "version")}
    made = make_record(ANSWER_ENTITY, order.key, {"entity": entity, **content})
    return AnswerRecord(made.entity, made.key, made.payload)


@dataclass(frozen=True)
class AnswerRecord(Record):
    """A record of ``raw.onec.exchange_result`` (records.TOPICS names the catalog's topics)."""

    @property
    def topic(self) -> str:
        return ANSWER_TOPIC
