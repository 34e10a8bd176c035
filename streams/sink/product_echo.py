"""What comes back from Bitrix24 about products: recognized, never passed on.

Egress writes every product change into Bitrix24, and Bitrix24 fires an event for each
write; the enrichment worker fetches the product into ``raw.bitrix24.product``. 1С owns
every product field, so none of these can change the canonical product. Each is classified
and counted (``mm_sink_records_total{entity="product"}``):
* ``unchanged`` - an echo: Bitrix24 shows what 1С has (the write we made);
* ``not_owner`` - Bitrix24 shows something else (edited by hand there, or our write of a
  newer version is still on its way); logged, because the next 1С change overwrites it;
* ``foreign`` - not a product we created (no 1С GUID in ``xmlId``).
The Bitrix24 id is linked in the crosswalk either way, so egress updates instead of adding.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.errors import InvalidRecord
from mmstream.metrics import SINK_RECORDS
from streams import crosswalk
from streams.backoff import retry_transient
from streams.normalize.bitrix24_product import parse
from streams.records import SourceRecord

log = logging.getLogger(__name__)
_SHOWN = ("code", "name", "full_name", "deleted")  # what egress writes into Bitrix24
_CURRENT = text("SELECT id, code, name, full_name, deleted FROM product WHERE id = ANY(:ids)"
                ).bindparams(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))))


class ProductEcho:
    """Classifies ``raw.bitrix24.product`` records against the stored products."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def handle(self, records: list[SourceRecord]) -> Counter[str]:
        """Classify a batch; returns counts by outcome. Idempotent (reads and links only)."""
        outcomes: Counter[str] = Counter()
        seen = []
        for rec in records:
            try:
                value = json.loads(rec.value) if rec.value is not None else {"_deleted": True}
                parsed = parse(value) if isinstance(value, dict) else None
            except (ValueError, RecursionError, InvalidRecord) as exc:  # deep JSON: RecursionError
                # Nothing downstream depends on it: count and log instead of a DLQ entry.
                outcomes["invalid"] += 1
                log.warning("unreadable Bitrix24 product", extra={
                    "error": str(exc)[:300], "source_partition": rec.partition,
                    "source_offset": rec.offset})
                continue
            if parsed is None:
                outcomes["foreign"] += 1
            else:
                seen.append(parsed)
        if seen:
            outcomes.update(await retry_transient(lambda: self._classify(seen),
                                                  what="product echo", entity="product"))
        for outcome, n in outcomes.items():
            SINK_RECORDS.labels("product", outcome).inc(n)
        return outcomes

    async def _classify(self, seen) -> Counter[str]:
        out: Counter[str] = Counter()
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_CURRENT, {"ids": [p.id for p, _ in seen]})).all()
            current = {r.id: r for r in rows}
            for product, b24_id in seen:
                await crosswalk.link(conn, "product", "bitrix24", str(product.id), b24_id)
                row = current.get(product.id)
                if row is None:
                    out["foreign"] += 1  # ours by its GUID, but not (or no longer) stored
                elif all(getattr(row, f) == getattr(product, f) for f in _SHOWN):
                    out["unchanged"] += 1
                else:
                    out["not_owner"] += 1
                    log.warning("product differs in Bitrix24 from 1С (1С owns it; the next "
                                "change overwrites it)", extra={"product_id": str(product.id),
                                                                "bitrix24_id": b24_id})
        return out
