"""Bitrix24 ``catalog.product`` (as ``raw.bitrix24.product`` carries it, unwrapped) -> the
canonical :class:`Product` as Bitrix24 shows it. Pure.

1С owns every product field, so a Bitrix24 version never changes the canonical product: the
product sink only recognizes it (an echo of what egress wrote, or a Bitrix24-side edit of a
1С-owned product) and records the id crosswalk. A product without our 1С GUID in ``xmlId``
was not created by us and has no canonical counterpart (``None``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mmstream.models.product import Product
from streams.normalize.oddities import EMPTY_REF, Unnormalizable, integer, text, yes_no

# Not registered with the entity sink: products have their own sink (streams/sink/processor).
TOPICS: tuple[str, ...] = ()


def parse(value: dict[str, Any]) -> tuple[Product, str] | None:
    """(product as Bitrix24 shows it, Bitrix24 product id), or None when it is not ours."""
    if value.get("_deleted"):
        return None  # a deletion in Bitrix24 does not delete a 1С product (1С owns it)
    b24_id = integer(value.get("id"), "id")
    if b24_id is None:
        raise Unnormalizable("id: missing")
    try:
        ref = UUID(text(value.get("xmlId")))
    except ValueError:
        return None
    if ref == EMPTY_REF:
        return None
    name = text(value.get("name"))
    if not name:
        raise Unnormalizable("name: empty")
    version = text(value.get("timestampX"))
    if not version:
        raise Unnormalizable("timestampX: missing (the version of a Bitrix24 product)")
    active = yes_no(value.get("active"), "active")
    product = Product(id=ref, source="bitrix24", version=version, code=text(value.get("code")),
                      name=name, full_name=text(value.get("previewText")),
                      deleted=active is False)
    return product, str(b24_id)
