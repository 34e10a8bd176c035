"""A write the portal executed but whose answer was lost (the chaos target storms' finding:
a courier's return stayed ``dependency_pending`` — "product N is not a product from 1С" —
through every DLQ replay round).

The product was in the Bitrix24 catalog, created by an ``add`` whose answer never came back,
so couriers could put it in their deals; but its crosswalk link came only with a delivery
that got through in full, and while the portal kept refusing the follow-up update the
product stayed unlinked, and every document naming it waited. Now:

* the product's retry links the row it finds by its xmlId *before* updating it, so the link
  is there once the delivery parks (the crosswalk is written when the lease ends);
* a courier's document resolves a deal product the crosswalk does not link yet by the
  portal row's xmlId, when that names a product we hold.

Real PostgreSQL and the Bitrix24 emulator (ASGI) with its fault injection; the client sees a
held answer as lost after a short read timeout, as over a real connection.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from devstack.emulators.bitrix24 import create_app
from mmstream.retry import RetryPolicy
from mmstream.settings import Bitrix24Settings, Settings
from stages.egress.actions import Targets
from stages.egress.bitrix24_product import ProductAction
from stages.egress.courier_documents import ReturnToOneC
from stages.egress.delivery import Crosswalk, DependencyPending, EntityEgress
from tests.stages.egress.test_lease_fencing import product_record

HOOK = "/rest/1/lostanswers/"
BASE = "http://portal.test"
IBLOCK = 14  # Settings().bitrix24.product_iblock_id


class LosingAnswers(httpx.AsyncBaseTransport):
    """The emulator behind a client-side read timeout: an answer it holds (a fault with a
    delay: the call executed) is lost, as a dropped or timed-out connection loses it."""

    def __init__(self, app, timeout_s: float = 0.3) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.timeout_s = timeout_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await asyncio.wait_for(self.inner.handle_async_request(request), self.timeout_s)
        except TimeoutError:
            raise httpx.ReadTimeout("no answer in time", request=request) from None


def portal_client(app) -> tuple[Bitrix24Client, httpx.AsyncClient]:
    portal = Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000)
    return (
        Bitrix24Client(portal, transport=LosingAnswers(app)),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE),
    )


def targets(client: Bitrix24Client) -> Targets:
    return Targets(
        settings=Settings(_env_file=None, bitrix24=client._settings),
        bitrix24=client,
        onec=None,
        producer=None,
    )


async def linked(engine, ref: str) -> str | None:
    return await Crosswalk(engine).external_id("product", "bitrix24", ref)


def test_a_lost_add_is_linked_when_the_retry_finds_it_though_the_update_is_refused(db_url):
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)
    ref = str(uuid.uuid4())

    async def main():
        client, admin = portal_client(app)
        engine = create_async_engine(db_url)
        # The add executes, its answer is held past the client's timeout (lost); then the
        # portal refuses every update for a while (a storm).
        await admin.post(
            "/_emulator/faults",
            json={"method": "catalog.product.add", "status": 200, "delay_s": 2.0},
        )
        await admin.post(
            "/_emulator/faults",
            json={
                "method": "catalog.product.update",
                "status": 503,
                "error": "QUERY_LIMIT_EXCEEDED",
                "description": "Too many requests",
                "times": 10,
            },
        )
        egress = EntityEgress(
            engine,
            ProductAction(targets(client)),
            None,
            RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.05, budget_s=60.0),
            "dlq.egress.bitrix24.product",
            inline_attempts=3,
        )
        try:
            outcome = await egress.deliver(product_record(ref, 1, "Чай"))
            products = [
                (p["id"], p["name"])
                for p in (await admin.get("/_emulator/products")).json()
                if p.get("xmlId") == ref
            ]
            return outcome, products, await linked(engine, ref)
        finally:
            await client.aclose()
            await admin.aclose()
            await engine.dispose()

    outcome, products, link = asyncio.run(main())
    # Still failing (parked for the delayed path), created once, and linked already.
    assert outcome == "parked"
    assert products == [(1, "Чай")]
    assert link == "1"


def hold_product(engine_url: str, ref: str) -> None:
    """A product 1С sent us (a stored canonical row)."""

    async def insert():
        engine = create_async_engine(engine_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO product (id, source, version, deleted, external_ids, code, name, "
                        "full_name, article, barcode, is_folder, is_service, properties, event_id) "
                        "VALUES (CAST(:id AS uuid), 'onec', 'AAAAAQAAAAA=', false, '{}', '', 'Чай', "
                        "'', '', '', false, false, '[]', CAST(:event AS uuid))"
                    ),
                    {"id": ref, "event": str(uuid.uuid4())},
                )
        finally:
            await engine.dispose()

    asyncio.run(insert())


def test_a_courier_document_takes_an_unlinked_deal_product_by_its_xmlid_if_we_hold_it(db_url):
    ours, foreign = str(uuid.uuid4()), str(uuid.uuid4())
    hold_product(db_url, ours)
    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        client, admin = portal_client(app)
        engine = create_async_engine(db_url)
        action = ReturnToOneC(targets(client))
        try:
            # Ours, created by an add whose answer was lost (no crosswalk link), and one
            # whose xmlId names a product we do not hold (a manager's import).
            mine = (
                await client.call(
                    "catalog.product.add",
                    {"fields": {"iblockId": IBLOCK, "name": "Чай", "xmlId": ours}},
                )
            )["element"]["id"]
            other = (
                await client.call(
                    "catalog.product.add",
                    {"fields": {"iblockId": IBLOCK, "name": "Чужой", "xmlId": foreign}},
                )
            )["element"]["id"]
            results = []
            for product in (mine, other):
                deal = await client.call("crm.deal.add", {"fields": {"TITLE": "Возврат"}})
                await client.call(
                    "crm.deal.productrows.set",
                    {"id": deal, "rows": [{"PRODUCT_ID": product, "PRICE": 350, "QUANTITY": 2}]},
                )
                try:
                    results.append(await action._lines(deal, Crosswalk(engine)))
                except DependencyPending as exc:
                    results.append(exc)
            return results, await linked(engine, ours)
        finally:
            await client.aclose()
            await admin.aclose()
            await engine.dispose()

    (lines, refused), link = asyncio.run(main())
    assert lines == [{"product_id": ours, "quantity": 2.0, "price": 350.0, "amount": 700.0}]
    assert isinstance(refused, DependencyPending) and "is not a product from 1С" in str(refused)
    # The product's own delivery links it (under its lease), not the document.
    assert link is None


def test_a_company_found_by_origin_id_is_linked_though_its_update_is_refused(db_url):
    from mmstream.models.counterparty import Counterparty
    from stages.egress.bitrix24_master import CounterpartyAction
    from tests.stages.egress.test_bitrix24_master import GUID, change, row

    app = create_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    async def main():
        client, admin = portal_client(app)
        engine = create_async_engine(db_url)
        # An earlier attempt created it, but its answer (and so its link) was lost.
        await admin.put(
            "/_emulator/entities/company/9", json={"TITLE": "Ромашка", "ORIGIN_ID": GUID}
        )
        await admin.post("/_emulator/faults", json={"method": "crm.company.update", "status": 500})
        xwalk, failed = Crosswalk(engine), None
        try:
            payload = row(Counterparty, kind="legal_entity", name="Ромашка 2")
            try:
                await CounterpartyAction(targets(client)).apply(
                    change("counterparty", payload), xwalk
                )
            except Exception as exc:  # noqa: BLE001 — the refused update, as the egress sees it
                failed = exc
            return failed, await xwalk.external_id("counterparty", "bitrix24", GUID)
        finally:
            await client.aclose()
            await admin.aclose()
            await engine.dispose()

    failed, link = asyncio.run(main())
    assert "INTERNAL_SERVER_ERROR" in str(failed)
    assert link == "company:9"


def test_a_customer_stored_before_its_link_landed_is_found_once_it_has(db_url):
    from mmstream.models.base import derived_id

    ours, onec_ref = str(uuid.uuid4()), str(uuid.uuid4())
    # The deal was stored while company 9 was not linked yet: it names the derived id.
    stored = str(derived_id("counterparty", "bitrix24", "company:9"))

    async def main():
        engine = create_async_engine(db_url)
        xwalk = Crosswalk(engine)
        try:
            await xwalk.link("counterparty", "onec", ours, onec_ref)
            try:
                await xwalk.require_onec("counterparty", stored, "customer of a return")
                before = "found"
            except DependencyPending:
                before = "pending"
            # The link lands (the company's delivery got its answer, or found it by ORIGIN_ID).
            await xwalk.link("counterparty", "bitrix24", ours, "company:9")
            return before, await xwalk.require_onec("counterparty", stored, "customer of a return")
        finally:
            await engine.dispose()

    before, after = asyncio.run(main())
    assert before == "pending"
    assert after == onec_ref
