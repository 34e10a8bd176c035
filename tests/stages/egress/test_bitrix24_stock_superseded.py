"""The stock egress counts a change it skips because a newer version of the row is stored
(``mm_egress_deliveries_total{outcome="superseded"}``), against the real ``stock`` table."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import psycopg
import pytest
from prometheus_client import REGISTRY

from mmstream.db.engine import async_engine
from stages.egress.bitrix24_stock import SUPERSEDED, StockAction
from stages.egress.delivery import Change, Crosswalk, DependencyPending

LABELS = {"target": "bitrix24", "entity": "stock", "outcome": SUPERSEDED}


class PortalNotToBeCalled:
    """The portal client: a superseded change must not reach it."""

    async def call(self, method: str, params: dict) -> dict:
        raise AssertionError(f"the portal was called: {method}")


def superseded_count() -> float:
    return REGISTRY.get_sample_value("mm_egress_deliveries_total", LABELS) or 0.0


def change(row: str, warehouse: str, product: str, version: str) -> Change:
    return Change(
        entity="stock",
        entity_id=row,
        change="upsert",
        outbox_id=1,
        event_id=str(uuid.uuid4()),
        payload={
            "id": row,
            "warehouse_id": warehouse,
            "product_id": product,
            "characteristic_id": None,
            "quantity": 5,
            "version": version,
        },
    )


async def apply(settings, item: Change) -> str | None:
    engine = async_engine(settings, pool_size=1)
    try:
        action = StockAction(SimpleNamespace(bitrix24=PortalNotToBeCalled()))
        return await action.apply(item, Crosswalk(engine))
    finally:
        await engine.dispose()


def test_a_change_older_than_the_stored_row_is_counted_superseded(settings):
    row, warehouse, product = (str(uuid.uuid4()) for _ in range(3))
    url = settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO stock (id, source, version, deleted, external_ids, warehouse_id, "
            "product_id, quantity, warehouse_name, event_id) VALUES (%s, 'onec', 'v3', "
            "false, '{}', %s, %s, 7, '', %s)",
            (row, warehouse, product, str(uuid.uuid4())),
        )
    before = superseded_count()
    assert asyncio.run(apply(settings, change(row, warehouse, product, "v1"))) is None
    assert superseded_count() == before + 1
    # The stored (latest) version is not superseded: it goes on (here: to wait for the
    # warehouse's store in Bitrix24) and is not counted.
    with pytest.raises(DependencyPending):
        asyncio.run(apply(settings, change(row, warehouse, product, "v3")))
    assert superseded_count() == before + 1
