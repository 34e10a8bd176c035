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
one ``КоммерческаяИнформация`` document.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from connectors.commerceml.errors import InvalidEntry
from connectors.commerceml.parser import Entry, child_text
from connectors.commerceml.records import (
    Record,
    decimal_text,
    make_record,
    named_values,
    split_id,
    unit_of,
)

SCHEMA_VERSION = "2.05"


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
    deleted = any(r["name"] == "ПометкаУдаления" and r["values"][:1] == ["true"] for r in requisites)
    items = []
    for item in doc.findall("Товары/Товар"):
        item_id = child_text(item, "Ид")
        product, characteristic = split_id(item_id, "order line (Товар)") if item_id else (None, None)
        items.append({
            "id": item_id or None, "product_id": product, "characteristic_id": characteristic,
            "name": child_text(item, "Наименование"), "unit": unit_of(item.find("БазоваяЕдиница")),
            "price": _decimal(item, "ЦенаЗаЕдиницу", where),
            "quantity": _decimal(item, "Количество", where),
            "amount": _decimal(item, "Сумма", where),
            "requisites": named_values(item.find("ЗначенияРеквизитов"), "ЗначениеРеквизита"),
        })
    content: dict[str, Any] = {
        "id": doc_id, "number": child_text(doc, "Номер"), "date": child_text(doc, "Дата"),
        "time": child_text(doc, "Время"), "operation": child_text(doc, "ХозОперация"),
        "role": child_text(doc, "Роль"), "currency": child_text(doc, "Валюта"),
        "rate": _decimal(doc, "Курс", where), "amount": _decimal(doc, "Сумма", where),
        "comment": child_text(doc, "Комментарий"), "deleted": deleted,
        "counterparties": [
            {"id": child_text(c, "Ид"), "name": child_text(c, "Наименование"),
             "full_name": child_text(c, "ПолноеНаименование"), "role": child_text(c, "Роль"),
             "inn": child_text(c, "ИНН"), "kpp": child_text(c, "КПП")}
            for c in doc.findall("Контрагенты/Контрагент")],
        "items": items,
        "requisites": requisites,
    }
    return make_record("customer_order", doc_id, content)


def orders_document(fragments: list[str], generated_at: datetime) -> tuple[bytes, list[int]]:
    """The ``sale&mode=query`` answer: one document holding the given ``Документ`` fragments
    (UTF-8, with prolog). Returns the bytes and the indexes of fragments left out because
    they are not a well-formed ``Документ`` element (the caller logs them)."""
    root = ET.Element("КоммерческаяИнформация", {
        "ВерсияСхемы": SCHEMA_VERSION, "ДатаФормирования": generated_at.strftime("%Y-%m-%dT%H:%M:%S")})
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
    return ET.tostring(root, encoding="utf-8", xml_declaration=True), broken
