"""Products to Bitrix24: a ``catalog.product`` of the configured catalog (``iblockId``),
keyed by ``xmlId`` = the 1С GUID.

A product is a canonical entity like a warehouse or a price type, so it takes their
create-or-update by external key (:class:`~stages.egress.bitrix24_master._XmlIdAction`):
the crosswalked product while it is there and ours, else a lookup by ``xmlId`` before any
``add`` (a timeout after the portal executed an ``add`` is found, not duplicated), and a
crosswalked product that is gone from the portal, or whose id now holds another product, is
recreated and relinked (stages/egress/relink.py). What only products have: every ``list``
filter and ``add`` carries the catalog's ``iblockId``, ``add`` answers ``{element: {id}}``,
and product groups are written like products (the flow always did; Bitrix24 sections are
not modelled). A deletion deactivates our product (``active: N``) and creates nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stages.egress.actions import Targets
from stages.egress.bitrix24_master import _XmlIdAction


def product_fields(product: dict[str, Any]) -> dict[str, Any]:
    """Canonical product -> catalog.product fields (camelCase; the 1С GUID is the xmlId)."""
    return {
        "name": product["name"],
        "xmlId": product["id"],
        "code": product.get("code") or "",
        "active": "N" if product.get("deleted") else "Y",
        "previewText": product.get("full_name") or "",
    }


class ProductAction(_XmlIdAction):
    """``catalog.product`` create-or-update by ``xmlId``; a deletion deactivates it."""

    entity: ClassVar[str] = "product"
    family: ClassVar[str] = "product"
    many: ClassVar[str] = "products"
    deletes_in_place: ClassVar[bool] = True
    skips_folders: ClassVar[bool] = False
    added_at: ClassVar[str | None] = "element"
    # catalog.product.list wants iblockId in its select as well as in its filter.
    select_also: ClassVar[tuple[str, ...]] = ("iblockId",)
    fields = staticmethod(product_fields)

    def __init__(self, targets: Targets) -> None:
        super().__init__(targets)
        self.iblock_id = targets.settings.bitrix24.product_iblock_id

    def scope(self) -> dict[str, Any]:
        return {"iblockId": self.iblock_id}
