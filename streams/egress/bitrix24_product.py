"""Products to Bitrix24: create-or-update by external key (the 1С GUID is the ``xmlId``).

The product flow predates canonical entities: its egress records come from the product
sink's outbox (same envelope: merged row as JSON, outbox id header), so the shared
:class:`~streams.egress.delivery.EntityEgress` delivers them like every other entity.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from connectors.bitrix24.errors import InvalidRequest
from streams.egress.actions import Targets
from streams.egress.delivery import Change, Crosswalk
from streams.egress.relink import LinkState, claim, describe, link_state

log = logging.getLogger(__name__)


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
    attempt created instead of adding a second one. A crosswalked product that is gone from
    the portal, or whose id now holds another product, is recreated and relinked."""

    target: ClassVar[str] = "bitrix24"
    entity: ClassVar[str] = "product"

    def __init__(self, targets: Targets) -> None:
        self.client = targets.bitrix24

    async def apply(self, change: Change, xwalk: Crosswalk) -> str:
        """Create or update the product; its Bitrix24 id."""
        fields = product_fields(change.payload)
        known = await xwalk.external_id("product", self.target, change.entity_id)
        if known is not None:
            # The crosswalked id is checked first: a manager may have deleted the product,
            # or a reset portal given the id to another product, which must not be
            # overwritten (streams/egress/relink.py).
            row = await self.client.product_at(int(known))
            state = link_state(row, "xmlId", change.entity_id)
            if state is LinkState.OURS:
                try:
                    await self.client.update_product(int(known), fields)
                    return str(known)
                except InvalidRequest as exc:
                    if not exc.not_found:
                        raise
                    row, state = None, LinkState.GONE  # deleted since the check
            log.warning(describe(state, "product", change.entity_id, known, row, "xmlId"))
        # No usable crosswalk entry: an earlier attempt may still have created it (timeout
        # after the portal executed the call), so look it up by external key before creating.
        found = await self.client.find_product_by_xml_id(change.entity_id)
        if found is None:
            found = await self.client.add_product(fields)
        else:
            await self.client.update_product(found, fields)
        await claim(xwalk, "product", self.target, change.entity_id, str(found))
        return str(found)
