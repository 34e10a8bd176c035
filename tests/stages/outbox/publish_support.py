"""Helpers of test_publish_committed (no tests here)."""

from __future__ import annotations

from stages.outbox.relay import OutboxRow
from stages.sink.entity_store import Incoming, merge


async def store_changes(h, products) -> list[OutboxRow]:
    """Merge ``products`` in one committed transaction, as the sink does; the outbox entries
    the merge wrote (each product on the raw partition its id is keyed to)."""
    from tests.stages.outbox.test_relay import partition_of

    changes: list[OutboxRow] = []
    batch = []
    for p in products:
        batch.append(Incoming(p, h.raw, partition_of(p.id), h.offset, {}))
        h.offset += 1
    async with h.engine.begin() as conn:
        await merge(conn, type(products[0]), batch, changes)
    return changes
