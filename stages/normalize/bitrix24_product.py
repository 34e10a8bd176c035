"""Bitrix24 ``catalog.product`` (as ``raw.bitrix24.product`` carries it, unwrapped) -> the
canonical :class:`Product` as Bitrix24 shows it. Pure.

1С owns every product field, so a Bitrix24 version never changes a product 1С has written:
the entity sink merges it like any non-owner's version — an echo of what egress wrote counts
as ``unchanged``, a Bitrix24-side edit as ``not_owner`` (``mm_sink_records_total``) — and
records the Bitrix24 id in the crosswalk (``external_ids``), so egress updates instead of
adding. A product without our 1С GUID in ``xmlId`` was not created by us and has no
canonical counterpart (no entity); a deletion in Bitrix24 deletes nothing 1С owns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from mmstream.models.product import Product
from stages.normalize.oddities import EMPTY_REF, Unnormalizable, integer, text, yes_no
from stages.normalize.registry import Context

TOPICS = ("raw.bitrix24.product",)


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Product]:
    """One ``raw.bitrix24.product`` record -> the product as Bitrix24 shows it (none when the
    product is not ours or the record is a deletion)."""
    parsed = parse(value)
    return [] if parsed is None else [parsed[0]]


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
    product = Product(
        id=ref,
        source="bitrix24",
        version=version,
        code=text(value.get("code")),
        name=name,
        full_name=text(value.get("previewText")),
        deleted=active is False,
        external_ids={"bitrix24": str(b24_id)},
    )
    return product, str(b24_id)
