"""CommerceML catalog records (as the bridge's exchange publishes them) -> canonical Product.

Pure functions; no TOPICS: onec_product.py claims ``raw.onec.product`` and hands
``"_source": "commerceml"`` records here. The record shape is documented in
connectors/commerceml/raw_records.py. The version's source is ``commerceml`` (it speaks for
1С: it owns what 1С owns); the id is 1С's own GUID, kept in ``external_ids`` as ``onec``.
Variants (``product#characteristic``) are not part of the canonical product yet: they are
refused as InvalidRecord so they land, visible and replayable, in the sink DLQ rather than
overwrite their product.

Fields: 1С writes the full name not as an element but as the requisite ``Полное
наименование`` (``ЗначенияРеквизитов``); ``Описание`` is the product's description, not its
name. The barcode is ``<Штрихкод>`` (2.04+) or the requisite ``Штрихкод`` (some 2.0x
exports). Names are pretty-printed over several indented lines by some 1С versions: the
name fields are made one line.

Properties (``ЗначенияСвойств``): one canonical item per value, ``{id, name, value,
value_id}``. The bridge resolved dictionary (``Справочник``) values through the document's
``Классификатор`` (``labels``) and marked which values are dictionary ids (``value_ids``); a
dictionary id the document does not resolve (its classifier came in another file, or only
with its changes) keeps its ``value_id`` with an empty ``value`` rather than pass a GUID off
as text.
"""

from __future__ import annotations

from uuid import UUID

from mmstream.errors import InvalidRecord
from mmstream.models.product import Product, ProductProperty

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


def properties(doc: dict) -> tuple[ProductProperty, ...]:
    """The record's ``properties`` as canonical items, one per value (see the module doc)."""
    items = doc.get("properties") or []
    if not isinstance(items, list):
        raise InvalidRecord("properties: expected a list")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidRecord("properties: an entry must be an object")
        pid = str(item.get("id") or "").strip()
        if not pid:
            continue  # a value without its property says nothing a consumer can use
        values, labels, refs = (item.get(k) or [] for k in ("values", "labels", "value_ids"))
        if not all(isinstance(v, list) for v in (values, labels, refs)):
            raise InvalidRecord(
                f"properties {pid[:40]}: values, labels and value_ids must be lists"
            )
        name = one_line(item.get("name"))
        for i, raw in enumerate(values):
            ref = str(refs[i] or "") if i < len(refs) else ""
            label = one_line(labels[i] if i < len(labels) else raw)
            # An unresolved dictionary reference: the label is the id itself.
            value = "" if ref and label == one_line(ref) else label
            out.append(ProductProperty(id=pid, name=name, value=value, value_id=ref))
    return tuple(out)


def to_product(doc: dict) -> Product:
    """Map one CommerceML product record; InvalidRecord says why when it cannot."""
    if doc.get("characteristic_id"):
        raise InvalidRecord(
            "product characteristics (Ид product#characteristic) are not "
            "modelled yet; replay this record once they are"
        )
    try:
        product_id = UUID(str(doc["id"]))
    except (KeyError, ValueError):
        raise InvalidRecord(f"CommerceML product id {doc.get('id')!r} is not a 1С GUID") from None
    name = one_line(doc.get("name"))
    version = str(doc.get("version") or "")
    if not name or not version:
        raise InvalidRecord("CommerceML product record without name or version")
    full_name = requisite(doc, _FULL_NAME) or one_line(doc.get("full_name"))
    barcode = one_line(doc.get("barcode")) or requisite(doc, _BARCODE)
    if "\x00" in (
        name
        + version
        + full_name
        + barcode
        + str(doc.get("article") or "")
        + str(doc.get("code") or "")
    ):
        raise InvalidRecord("text fields must not contain the NUL character")
    return Product(
        id=product_id,
        source="commerceml",
        external_ids={"onec": str(product_id)},
        version=version[:64],
        code=str(doc.get("code") or "").strip(),
        name=name,
        full_name=full_name,
        article=one_line(doc.get("article")),
        barcode=barcode,
        deleted=bool(doc.get("deleted")),
        properties=properties(doc),
    )
