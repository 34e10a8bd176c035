"""CommerceML test documents: the real fixtures, and documents reshaped from them.

The captured УТ export has no ``Каталог`` (its "import.xml" holds an offer package), so the
catalog the exchange tests need is rebuilt from the real data: each ``Предложение`` of the
real offers.xml becomes a ``Товар`` (same Ид — ``product#characteristic`` included —, name,
unit, properties and ``Статус``; prices dropped), with the groups the real import.xml gives
its product, under the real import.xml's ``Классификатор``. Stock is not in the capture
either: :func:`offers_with_stock` adds quantities to the real offers.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from tests.support.stack import FIXTURES as ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "commerceml"
IMPORT = FIXTURES / "irpsv_real-1c-ut101_import.xml"
OFFERS = FIXTURES / "irpsv_real-1c-ut101_offers.xml"
ORDERS = FIXTURES / "irpsv_off-doc-1c_orders.xml"
PRICE_TYPE = "Отпускная цена"
WAREHOUSE = "7a2c2a3e-0b5e-11e6-9472-00155d020201"


def _tree(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _document(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def catalog() -> bytes:
    """An import.xml with ``Классификатор`` and ``Каталог/Товары`` rebuilt from the fixtures:
    the offers' classifier (its properties) with the groups of the real import.xml."""
    source, offers = _tree(IMPORT), _tree(OFFERS)
    groups_of = {o.findtext("Ид"): o.find("Группы") for o in source.iter("Предложение")}
    root = ET.Element(source.tag, source.attrib)
    classifier = offers.find("Классификатор")
    classifier.remove(classifier.find("Группы"))
    classifier.append(source.find("Классификатор/Группы"))
    root.append(classifier)
    cat = ET.SubElement(root, "Каталог", {"СодержитТолькоИзменения": "false"})
    ET.SubElement(cat, "Ид").text = "5fd9b34a-b7b3-4df4-bce7-89306fd72c4b"
    ET.SubElement(cat, "ИдКлассификатора").text = source.findtext("Классификатор/Ид")
    goods = ET.SubElement(cat, "Товары")
    for offer in offers.find("ПакетПредложений/Предложения"):
        item = ET.SubElement(goods, "Товар")
        for child in offer:
            if child.tag != "Цены":
                item.append(child)
        group = groups_of.get(offer.findtext("Ид").split("#")[0])
        if group is not None:
            item.append(group)
    return _document(root)


def offers_with_stock() -> bytes:
    """The real offers.xml, each priced offer given a total and one warehouse's quantity."""
    root = _tree(OFFERS)
    package = root.find("ПакетПредложений")
    stores = ET.Element("Склады")
    # Declarations come before the offers, as in 1С's files.
    package.insert(list(package).index(package.find("Предложения")), stores)
    store = ET.SubElement(stores, "Склад")
    ET.SubElement(store, "Ид").text = WAREHOUSE
    ET.SubElement(store, "Наименование").text = "Основной склад"
    for index, offer in enumerate(
        o for o in root.iter("Предложение") if o.find("Цены") is not None
    ):
        ET.SubElement(offer, "Количество").text = str(index)
        ET.SubElement(offer, "Склад", {"ИдСклада": WAREHOUSE, "КоличествоНаСкладе": f"{index}.5"})
    return _document(root)


def with_namespace(data: bytes) -> bytes:
    """The document with the CommerceML namespace declared on its root."""
    return data.replace(
        "<КоммерческаяИнформация ".encode(),
        '<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" '.encode(),
        1,
    )


def as_windows_1251(data: bytes) -> bytes:
    """The document re-encoded as 1С writes it for old sites: windows-1251, declared so."""
    text = data.decode("utf-8-sig")
    head, sep, rest = text.partition("?>")
    assert sep, "a document with an XML prolog"
    return ('<?xml version="1.0" encoding="windows-1251"?>' + rest).encode("cp1251")


def zipped(members: dict[str, bytes]) -> bytes:
    """A zip archive as 1С sends it with zip=yes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def chunks(data: bytes, size: int) -> list[bytes]:
    """The data cut into pieces of at most ``size`` bytes, as 1С cuts at file_limit."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def offer_ids() -> list[str]:
    """Every offer Ид of the real offers.xml, in document order."""
    return [o.findtext("Ид") for o in _tree(OFFERS).iter("Предложение")]


def priced_offer_ids() -> list[str]:
    """Offer Ид values of the real offers.xml that carry a price."""
    return [
        o.findtext("Ид") for o in _tree(OFFERS).iter("Предложение") if o.find("Цены") is not None
    ]


def deleted_offer_ids() -> list[str]:
    """Offer Ид values of the real offers.xml with <Статус>Удален</Статус>."""
    return [
        o.findtext("Ид")
        for o in _tree(OFFERS).iter("Предложение")
        if o.findtext("Статус") == "Удален"
    ]
