"""The reconcile's 1С "newer at the source" comparison (``reconcile.onec_sets``) of an entity
that has no Bitrix24 spec, only a 1С document spec: a real, migrated PostgreSQL and the 1С
emulator over OData (in process)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from connectors.onec.odata.client import ODataClient
from devstack.emulators.onec.app import create_app
from mmstream.db.engine import async_engine
from mmstream.settings import ODataSettings, Settings
from stages.reconcile.job import Reconciler

BASE = "http://1c.test/trade/odata/standard.odata/"
CASH_RECEIPTS = "Document_ПриходныйКассовыйОрдер"


def test_a_document_entity_with_a_onec_set_is_compared_and_its_drift_reported(db_url):
    settings = Settings(database_url=db_url)
    settings = settings.model_copy(
        update={
            "reconcile": settings.reconcile.model_copy(
                update={"onec_sets": {"cash_receipt": CASH_RECEIPTS}}
            )
        }
    )
    ref = str(uuid.uuid4())
    onec = create_app(username="odata", password="secret")

    async def scenario():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=onec), base_url="http://1c.test"
        ) as admin:
            (
                await admin.put(
                    f"/_emulator/odata/{CASH_RECEIPTS}",
                    json={
                        "Ref_Key": ref,
                        "DeletionMark": False,
                        "Number": "0000-000001",
                        "Date": "2026-12-07T09:00:00",
                        "Posted": False,
                    },
                )
            ).raise_for_status()
        engine = async_engine(settings)
        odata = ODataClient(
            ODataSettings(base_url=BASE, username="odata", password="secret"),
            transport=httpx.ASGITransport(app=onec),
        )
        try:
            # Without a producer a re-read cannot be published: the repair stays unresolved.
            return await Reconciler(settings, engine, odata=odata).run(
                ["cash_receipt"], ["onec"], repair=True, actor="test"
            )
        finally:
            await odata.aclose()
            await engine.dispose()

    # Before the fix: AttributeError ('NoneType' has no attribute 'entity'), the whole run lost.
    report = asyncio.run(scenario())
    assert report.errors == []
    assert report.compared["cash_receipt/onec"] == 1  # the set's records (no rows of ours)
    assert [(d.entity, d.target, d.kind, d.canonical_id) for d in report.drifts] == [
        ("cash_receipt", "onec", "newer_at_source", ref)
    ]
    (repair,) = report.repairs
    assert repair.action == "unresolved" and "not read over OData" in repair.detail
