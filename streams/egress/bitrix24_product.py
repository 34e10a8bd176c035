"""Products to Bitrix24: create-or-update by external key (the 1С GUID is the ``xmlId``).

The product flow predates canonical entities: its egress records come from the product
sink's outbox (same envelope: merged row as JSON, outbox id header), so the shared
:class:`~streams.egress.delivery.EntityEgress` delivers them like every other entity.
"""

from __future__ import annotations

from typing import ClassVar

from streams.egress.actions import Targets
from streams.egress.delivery import Change, Crosswalk


def product_fields(product: dict) -> dict:
    """Canonical product -> catalog.product fields (camelCase; the 1C GUID is the xmlId)."""
    return {
        "name": product["name"],
        "xmlId": product["id"],
        "code": product.get("code") or "",
        "active": "N" if product.get("deleted") else "Y",
        "previewText": product.get("full_name") or "",
    }


class ProductAction:
    """``catalog.product`` create-or-update. A create is always preceded by a crosswalk and
    an ``xmlId`` lookup, so a timeout followed by a retry updates the product the first
    attempt created instead of adding a second one."""

    target: ClassVar[str] = "bitrix24"
    entity: ClassVar[str] = "product"

    def __init__(self, targets: Targets) -> None:
        self.client = targets.bitrix24

    async def apply(self, change: Change, xwalk: Crosswalk) -> str:
        """Create or update the product; its Bitrix24 id."""
        fields = product_fields(change.payload)
        known = await xwalk.external_id("product", self.target, change.entity_id)
        if known is not None:
            await self.client.update_product(int(known), fields)
            return str(known)
        # No crosswalk entry: an earlier attempt may still have created it (timeout after
        # the portal executed the call), so look it up by external key before creating.
        found = await self.client.find_product_by_xml_id(change.entity_id)
        if found is None:
            found = await self.client.add_product(fields)
        else:
            await self.client.update_product(found, fields)
        await xwalk.link("product", self.target, change.entity_id, str(found))
        return str(found)
