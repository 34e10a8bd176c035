"""CommerceML catalog records (as the bridge's exchange publishes them) -> canonical Product.

Pure functions. The record shape is documented in connectors/commerceml/records.py.
Variants (``product#characteristic``) are not part of the canonical product yet: they are
refused as InvalidRecord so they land, visible and replayable, in the sink DLQ rather than
overwrite their product.

Fields: 1С writes the full name not as an element but as the requisite ``Полное
наименование`` (``ЗначенияРеквизитов``); ``Описание`` is the product's description, not its
name. The barcode is ``<Штрихкод>`` (2.04+) or the requisite ``Штрихкод`` (some 2.0x
exports). Names are pretty-printed over several indented lines by some 1С versions: the
name fields are made one line. ``ЗначенияСвойств`` (properties) have no place in the
canonical product yet; they stay in the raw record.
"""

from __future__ import annotations

from uuid import UUID

from mmstream.errors import InvalidRecord
from mmstream.models.product import Product

_FULL_NAME = ("полное наименование", "наименованиеполное")
_BARCODE = ("штрихкод", "штрих-код", "штрихкоды")


def one_line(value: object) -> str:
    """Text with every run of whitespace (newlines and XML indentation included) as one space."""
    return " ".join(str(value or "").split())


def requisite(doc: dict, names: tuple[str, ...]) -> str:
    """The first value of the first requisite (ЗначенияРеквизитов) called one of ``names``
    (case-insensitive: 1С spells them ``Полное наименование`` or ``ПолноеНаименование``)."""
    items = doc.get("requisites") or []
    if not isinstance(items, list):
        raise InvalidRecord("requisites: expected a list")
    for item in items:
        if not isinstance(item, dict):
            raise InvalidRecord("requisites: an entry must be an object")
        if str(item.get("name") or "").strip().casefold() in names:
            values = item.get("values") or []
            if not isinstance(values, list):
                raise InvalidRecord("requisites: values must be a list")
            for value in values:
                if one_line(value):
                    return one_line(value)
    return ""


def to_product(doc: dict) -> Product:
    """Map one CommerceML product record; InvalidRecord says why when it cannot."""
    if doc.get("characteristic_id"):
        raise InvalidRecord("product characteristics (Ид product#characteristic) are not "
                            "modelled yet; replay this record once they are")
    try:
        product_id = UUID(str(doc["id"]))
    except (KeyError, ValueError):
        raise InvalidRecord(f"CommerceML product id {doc.get('id')!r} is not a 1C GUID") from None
    name = one_line(doc.get("name"))
    version = str(doc.get("version") or "")
    if not name or not version:
        raise InvalidRecord("CommerceML product record without name or version")
    full_name = requisite(doc, _FULL_NAME) or one_line(doc.get("full_name"))
    barcode = one_line(doc.get("barcode")) or requisite(doc, _BARCODE)
    if "\x00" in (name + version + full_name + barcode + str(doc.get("article") or "")
                   + str(doc.get("code") or "")):
        raise InvalidRecord("text fields must not contain the NUL character")
    return Product(
        id=product_id,
        source="onec",
        version=version[:64],
        code=str(doc.get("code") or "").strip(),
        name=name,
        full_name=full_name,
        article=one_line(doc.get("article")),
        barcode=barcode,
        deleted=bool(doc.get("deleted")),
    )
