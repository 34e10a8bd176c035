"""CommerceML catalog records (as the bridge's exchange publishes them) -> canonical Product.

Pure functions. The record shape is documented in connectors/commerceml/records.py.
Variants (``product#characteristic``) are not part of the canonical product yet: they are
refused as InvalidRecord so they land, visible and replayable, in the sink DLQ rather than
overwrite their product.
"""

from __future__ import annotations

from uuid import UUID

from mmstream.errors import InvalidRecord
from mmstream.models.product import Product


def to_product(doc: dict) -> Product:
    """Map one CommerceML product record; InvalidRecord says why when it cannot."""
    if doc.get("characteristic_id"):
        raise InvalidRecord("product characteristics (Ид product#characteristic) are not "
                            "modelled yet; replay this record once they are")
    try:
        product_id = UUID(str(doc["id"]))
    except (KeyError, ValueError):
        raise InvalidRecord(f"CommerceML product id {doc.get('id')!r} is not a 1C GUID") from None
    name = str(doc.get("name") or "").strip()
    version = str(doc.get("version") or "")
    if not name or not version:
        raise InvalidRecord("CommerceML product record without name or version")
    if "\x00" in name + version + str(doc.get("article") or "") + str(doc.get("code") or ""):
        raise InvalidRecord("text fields must not contain the NUL character")
    return Product(
        id=product_id,
        source="onec",
        version=version[:64],
        code=str(doc.get("code") or "").strip(),
        name=name,
        full_name=str(doc.get("description") or "").strip(),
        article=str(doc.get("article") or "").strip(),
        deleted=bool(doc.get("deleted")),
    )
