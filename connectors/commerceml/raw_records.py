"""CommerceML entries -> the JSON records published to the raw topics. Pure functions.

Every record has ``"_source": "commerceml"`` and a ``version``: the SHA-256 (hex) of the
record's canonical JSON without the version itself. CommerceML carries no version, so the
content is the version: re-sending an unchanged entry gives the same version, hence the
same CloudEvents id (``ce_id``), and downstream dedupe drops it. Ids: an ``Ид`` of the form
``<product>#<characteristic>`` names a characteristic (a variant) of a product.

``raw.onec.product`` (``Каталог/Товары/Товар``), key ``product_id``::

    {"_source": "commerceml", "id": Ид before '#', "characteristic_id": after '#' | null,
     "cml_id": Ид, "deleted": Статус = Удален (element or attribute) | ПометкаУдаления,
     "name": Наименование, "code": Код, "article": Артикул, "barcode": Штрихкод,
     "description": Описание, "full_name": ПолноеНаименование (element; 1С mostly sends the
     requisite "Полное наименование" instead, kept in "requisites"),
     "unit": {"code": @Код, "name": text, "full_name": @НаименованиеПолное,
              "international": @МеждународноеСокращение} | null,      (БазоваяЕдиница)
     "groups": [{"id", "name"}],                  (Группы/Ид, names from the Классификатор)
     "properties": [{"id", "name", "type", "values": [...], "labels": [...],
                     "value_ids": [...]}],        (ЗначенияСвойств; "type" the declared
                   ТипЗначений | null; labels resolve dictionary ids through the
                   Классификатор (an unresolved one stays the id); value_ids[i] is the
                   ИдЗначения when values[i] is a dictionary reference, else null)
     "characteristics": [{"name", "value"}],      (ХарактеристикиТовара)
     "requisites": [{"name", "values": [...]}],   (ЗначенияРеквизитов)
     "taxes": [{"name", "rate"}],                 (СтавкиНалогов)
     "images": [path],                            (Картинка)
     "version": sha256}

``raw.onec.price`` (``Предложение/Цены/Цена``), one per offer × price type, key
``<offer>:<price type id>`` where ``<offer>`` is ``product`` or ``product#characteristic``::

    {"_source", "product_id", "characteristic_id", "offer_id", "deleted",
     "price_type_id": ИдТипаЦены, "price_type_name": from ТипыЦен,
     "price": ЦенаЗаЕдиницу (decimal string), "currency": Валюта (or the price type's),
     "unit": Единица, "ratio": Коэффициент (decimal string | null), "version"}

``raw.onec.stock`` (``Количество``, ``Склад @ИдСклада @КоличествоНаСкладе``,
``Остатки/Остаток[/Склад]``), key ``<offer>`` for the total, ``<offer>:<warehouse id>``
per warehouse::

    {"_source", "product_id", "characteristic_id", "offer_id", "deleted",
     "warehouse_id": id | null, "warehouse_name": from Склады | null,
     "quantity": decimal string, "version"}

``raw.onec.price_type`` (``ТипыЦен/ТипЦены`` of the ``ПакетПредложений`` or, 2.08+ and 3.x,
of the ``Классификатор``), key the type's ``Ид`` (a GUID, or its name in УТ exports)::

    {"_source", "id": Ид, "name": Наименование, "code": Код, "currency": Валюта (as sent),
     "description": Описание,
     "tax": {"name": Налог/Наименование, "included": Налог/УчтеноВСумме ("true"/"false"),
             "excise": Налог/Акциз} | null, "deleted", "version"}

A pure "exchange with site" setup declares price types only here: without these records
every price would wait for a price type that never comes.

Orders (``Документ``) are mapped in orders.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.commerceml.errors import InvalidEntry
from connectors.commerceml.parser import Context, Entry, child_text, text

SOURCE = "commerceml"
MAX_ID_CHARS = 256
_DELETED = "удален"

TOPICS = {
    "product": "raw.onec.product",
    "price": "raw.onec.price",
    "stock": "raw.onec.stock",
    "customer_order": "raw.onec.customer_order",
    "price_type": "raw.onec.price_type",
}


@dataclass(frozen=True)
class Record:
    """One record for a raw topic: its entity, key and JSON payload (version included)."""

    entity: str
    key: str
    payload: dict[str, Any]

    @property
    def topic(self) -> str:
        """The logical raw topic (topics.yaml name)."""
        return TOPICS[self.entity]

    @property
    def version(self) -> str:
        """The content hash that stands in for the version CommerceML does not have."""
        return self.payload["version"]

    def value(self) -> bytes:
        """The payload as compact UTF-8 JSON."""
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode()


def make_record(entity: str, key: str, content: dict[str, Any]) -> Record:
    """A record whose version is the hash of its canonical content."""
    body = {"_source": SOURCE, **content}
    canonical = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return Record(entity, key, {**body, "version": hashlib.sha256(canonical.encode()).hexdigest()})


def split_id(raw: str, what: str) -> tuple[str, str | None]:
    """``product#characteristic`` -> (product, characteristic | None); InvalidEntry if empty."""
    if not raw:
        raise InvalidEntry(f"a {what} without <Ид>")
    if len(raw) > MAX_ID_CHARS:
        raise InvalidEntry(
            f"the <Ид> of a {what} is longer than {MAX_ID_CHARS} characters: {raw[:40]}…"
        )
    product, _, characteristic = raw.partition("#")
    if not product.strip():
        raise InvalidEntry(f"the <Ид> {raw!r} of a {what} has no product part")
    return product.strip(), characteristic.strip() or None


def offer_key(product: str, characteristic: str | None) -> str:
    """``product`` or ``product#characteristic``."""
    return f"{product}#{characteristic}" if characteristic else product


def decimal_text(raw: str, what: str, where: str) -> str:
    """A decimal as a string (exact, no float); InvalidEntry when it is not a number."""
    try:
        value = Decimal(raw.replace(",", ".").replace("\xa0", "").replace(" ", ""))
    except InvalidOperation:
        raise InvalidEntry(f"{where}: {what} {raw!r} is not a number") from None
    if not value.is_finite():
        raise InvalidEntry(f"{where}: {what} {raw!r} is not a finite number")
    return str(value)


def is_deleted(elem: ET.Element) -> bool:
    """``<Статус>Удален</Статус>``, ``Статус="Удален"`` or ``<ПометкаУдаления>true``."""
    status = child_text(elem, "Статус") or (elem.get("Статус") or "").strip()
    return status.lower() == _DELETED or child_text(elem, "ПометкаУдаления").lower() == "true"


def named_values(elem: ET.Element | None, item: str) -> list[dict[str, Any]]:
    """``<item><Наименование/><Значение/>…</item>`` pairs (ЗначенияРеквизитов)."""
    if elem is None:
        return []
    return [
        {
            "name": child_text(e, "Наименование"),
            "values": [text(v) for v in e.findall("Значение") if text(v)],
        }
        for e in elem.findall(item)
        if child_text(e, "Наименование")
    ]


def unit_of(elem: ET.Element | None) -> dict[str, str] | None:
    """A ``БазоваяЕдиница`` (text plus attributes; 1С pads attributes with spaces)."""
    if elem is None:
        return None
    return {
        "code": (elem.get("Код") or "").strip(),
        "name": text(elem),
        "full_name": (elem.get("НаименованиеПолное") or "").strip(),
        "international": (elem.get("МеждународноеСокращение") or "").strip(),
    }


def _properties(elem: ET.Element | None, ctx: Context) -> list[dict[str, Any]]:
    out = []
    for prop in [] if elem is None else elem.findall("ЗначенияСвойства"):
        pid = child_text(prop, "Ид") or None
        # Some exports nest the value one level deeper (ЗначениеСвойства/Значение).
        values = [text(v) for v in prop.iter("Значение") if text(v)]
        if pid is None and not values:
            continue
        known = ctx.properties.get(pid or "")
        out.append(
            {
                "id": pid,
                "name": known.name if known else None,
                "type": (known.value_type or None) if known else None,
                "values": values,
                "labels": [known.values.get(v, v) if known else v for v in values],
                "value_ids": [v if _is_reference(known, v) else None for v in values],
            }
        )
    return out


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _is_reference(known, value: str) -> bool:
    """A value that names a dictionary entry: one of the property's ВариантыЗначений, any
    value of a property declared ``Справочник`` (its dictionary may be in another file, e.g.
    a classifier that ``СодержитТолькоИзменения``), or a GUID as the value of a property this
    document does not declare (3.x sends the classifier in its own file; 1С writes no GUID
    as the text of a string property)."""
    if known is None:
        return _GUID.fullmatch(value) is not None
    return value in known.values or known.is_dictionary


def product_record(entry: Entry) -> Record:
    """A ``Товар`` -> a ``raw.onec.product`` record keyed by the product id."""
    elem, ctx = entry.element, entry.context
    cml_id = child_text(elem, "Ид")
    product, characteristic = split_id(cml_id, "product (Товар)")
    deleted = is_deleted(elem)
    name = child_text(elem, "Наименование")
    if not name and not deleted:
        raise InvalidEntry(f"product {cml_id}: no <Наименование>")
    group_ids = [text(g) for g in elem.findall("Группы/Ид") if text(g)]
    content = {
        "id": product,
        "characteristic_id": characteristic,
        "cml_id": cml_id,
        "deleted": deleted,
        "name": name,
        "code": child_text(elem, "Код"),
        "article": child_text(elem, "Артикул"),
        "barcode": child_text(elem, "Штрихкод"),
        "description": child_text(elem, "Описание"),
        # 1С writes the full name as a requisite; some exports as this element.
        "full_name": child_text(elem, "ПолноеНаименование"),
        "unit": unit_of(elem.find("БазоваяЕдиница")),
        "groups": [{"id": g, "name": ctx.groups.get(g)} for g in group_ids],
        "properties": _properties(elem.find("ЗначенияСвойств"), ctx),
        "characteristics": [
            {"name": child_text(c, "Наименование"), "value": child_text(c, "Значение")}
            for c in elem.findall("ХарактеристикиТовара/ХарактеристикаТовара")
        ],
        "requisites": named_values(elem.find("ЗначенияРеквизитов"), "ЗначениеРеквизита"),
        "taxes": [
            {"name": child_text(t, "Наименование"), "rate": child_text(t, "Ставка")}
            for t in elem.findall("СтавкиНалогов/СтавкаНалога")
        ],
        "images": [text(p) for p in elem.findall("Картинка") if text(p)],
    }
    return make_record("product", product, content)


def price_type_record(entry: Entry) -> Record:
    """A ``ТипЦены`` declaration -> a ``raw.onec.price_type`` record keyed by its ``Ид``."""
    elem = entry.element
    type_id = child_text(elem, "Ид")
    if not type_id:
        raise InvalidEntry("a price type (ТипЦены) without <Ид>")
    if len(type_id) > MAX_ID_CHARS:
        raise InvalidEntry(f"the <Ид> of a price type is longer than {MAX_ID_CHARS} characters")
    tax = elem.find("Налог")
    return make_record(
        "price_type",
        type_id,
        {
            "id": type_id,
            "name": child_text(elem, "Наименование"),
            "code": child_text(elem, "Код"),
            "currency": child_text(elem, "Валюта"),
            "description": child_text(elem, "Описание"),
            "tax": None
            if tax is None
            else {
                "name": child_text(tax, "Наименование"),
                "included": child_text(tax, "УчтеноВСумме").lower() or None,
                "excise": child_text(tax, "Акциз").lower() or None,
            },
            "deleted": is_deleted(elem),
        },
    )


def offer_records(entry: Entry) -> list[Record]:
    """A ``Предложение`` -> one price record per ``Цена`` and the stock records it carries."""
    elem, ctx = entry.element, entry.context
    cml_id = child_text(elem, "Ид")
    product, characteristic = split_id(cml_id, "offer (Предложение)")
    offer = offer_key(product, characteristic)
    base = {
        "product_id": product,
        "characteristic_id": characteristic,
        "offer_id": offer,
        "deleted": is_deleted(elem),
    }
    out = []
    for price in elem.findall("Цены/Цена"):
        type_id = child_text(price, "ИдТипаЦены")
        if not type_id:
            raise InvalidEntry(f"offer {cml_id}: a <Цена> without <ИдТипаЦены>")
        ptype = ctx.price_types.get(type_id)
        ratio = child_text(price, "Коэффициент")
        out.append(
            make_record(
                "price",
                f"{offer}:{type_id}",
                {
                    **base,
                    "price_type_id": type_id,
                    "price_type_name": ptype.name if ptype else None,
                    "price": decimal_text(
                        child_text(price, "ЦенаЗаЕдиницу"), "<ЦенаЗаЕдиницу>", f"offer {cml_id}"
                    ),
                    "currency": child_text(price, "Валюта") or (ptype.currency if ptype else ""),
                    "unit": child_text(price, "Единица"),
                    "ratio": decimal_text(ratio, "<Коэффициент>", f"offer {cml_id}")
                    if ratio
                    else None,
                },
            )
        )
    for warehouse, quantity in _stock(elem):
        out.append(
            make_record(
                "stock",
                f"{offer}:{warehouse}" if warehouse else offer,
                {
                    **base,
                    "warehouse_id": warehouse,
                    "warehouse_name": ctx.warehouses.get(warehouse) if warehouse else None,
                    "quantity": decimal_text(quantity, "a quantity", f"offer {cml_id}"),
                },
            )
        )
    return out


def _stock(elem: ET.Element) -> Iterator[tuple[str | None, str]]:
    """(warehouse id | None for the total, quantity) in the three shapes 1С and sites use."""
    if elem.find("Количество") is not None:
        yield None, child_text(elem, "Количество")
    for store in elem.findall("Склад"):
        # Attributes (Bitrix, УТ 11) or child elements (some older exports).
        wid = (store.get("ИдСклада") or child_text(store, "ИдСклада")).strip()
        qty = (store.get("КоличествоНаСкладе") or child_text(store, "КоличествоНаСкладе")).strip()
        if wid:
            yield wid, qty
    for rest in elem.findall("Остатки/Остаток"):
        held = rest.find("Склад")
        if held is None:
            yield None, child_text(rest, "Количество")
        elif child_text(held, "Ид"):
            yield (
                child_text(held, "Ид"),
                child_text(held, "Количество") or child_text(rest, "Количество"),
            )
