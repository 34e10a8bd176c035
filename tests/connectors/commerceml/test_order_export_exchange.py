"""Couriers' instant orders and returns through 1С's "exchange with site", end to end on the
real broker, PostgreSQL, schema registry and bridge, with the Bitrix24 emulator:

deals won in the couriers' funnels -> the entity sink -> their egress changes -> the
``commerceml`` actions queue one document each (a retry queues nothing new) -> 1С, as it
conducts the exchange (checkauth → init → query → success), gets both, again at its next
query while it has not said ``success``, and nothing more after -> 1С's sale file with its
numbers -> ``raw.onec.exchange_result`` -> the sink records number, posted flag and status
``recorded`` -> the status actions write them to the deals.

The actions run directly on the stack's pieces (egress records read from the broker,
Crosswalk on PostgreSQL): which action a flow uses (``commerceml`` or the HTTP service) is
selected by the egress worker's wiring, not exercised here.
"""

from __future__ import annotations

import asyncio
import io
import logging
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from connectors.commerceml import document
from connectors.commerceml.store import ExchangeStore, ExportQueue
from connectors.ingress.app import create_app
from devstack.emulators.bitrix24 import create_app as portal_app
from mmstream.settings import Bitrix24Settings, CourierObjectSettings
from stages.egress.actions import Targets
from stages.egress.commerceml_orders import InstantOrderToExchange, ReturnToExchange
from stages.egress.courier_documents import InstantOrderStatus, ReturnStatus
from stages.egress.delivery import Change, Crosswalk
from stages.egress.fencing import CURRENT, Fence, LeaseLost
from stages.normalize.bitrix24_crm import counterparty_ref
from stages.normalize.registry import Context
from stages.source_record import SourceRecord
from tests.connectors.ingress.test_commerceml_exchange import OneC
from tests.stages.sink.harness import Sinks, dlq, sink_settings, sql
from tests.support.topics import count_records

PASSWORD = SecretStr("an-exchange-password-for-the-order-export-test")
HOOK = "/rest/1/orderexport/"
BASE = "http://portal.test"
INSTANT, RETURNS, COMPANY = 3, 5, 7
CUSTOMER = "87fa6cc2-e901-11ea-8591-000c29b45b09"
PRODUCT = "5d1b6a3e-2f4c-11ef-8a6b-000c29b45b09"


@pytest.fixture
def s(settings, registry_url, tmp_path):
    made = sink_settings(settings, registry_url)
    cml = made.commerceml.model_copy(
        update={"work_dir": tmp_path, "password": PASSWORD, "use_zip": False}
    )
    portal = Bitrix24Settings(webhook_url=BASE + HOOK, rate_per_s=1e6, burst=1000)
    return made.model_copy(update={"commerceml": cml, "bitrix24": portal})


def _records(messages) -> list[SourceRecord]:
    return [
        SourceRecord(
            m.topic(), m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or [])
        )
        for m in messages
    ]


def _changes(s, topic: str, entity: str, expect: int) -> dict[str, Change]:
    """The latest egress change per entity id on ``topic``."""
    out: dict[str, Change] = {}
    for rec in _records(count_records(s, topic, expect_at_least=expect)):
        change = Change.parse(entity, rec)
        out[change.entity_id] = change
    return out


class Portal:
    """The Bitrix24 emulator and, per event loop, a client of it."""

    def __init__(self, s) -> None:
        self.s = s
        self.app = portal_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)

    def client(self) -> Bitrix24Client:
        return Bitrix24Client(self.s.bitrix24, transport=httpx.ASGITransport(app=self.app))


async def _sink(s, records: list[SourceRecord]) -> None:
    sinks = Sinks(s)
    sinks.entities.ctx = Context(
        couriers=CourierObjectSettings(
            instant_order_category_id=INSTANT, return_category_id=RETURNS
        )
    )
    try:
        await sinks.entities.handle(records)
    finally:
        await sinks.close()


def _query(onec: OneC) -> list:
    resp = onec.call("query")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/xml; charset=windows-1251"
    assert resp.content.startswith(b'<?xml version="1.0" encoding="windows-1251"?>')
    return list(document.records(io.BytesIO(resp.content)))


def _answer(documents: list[tuple[str, str, str]]) -> bytes:
    """1С's sale file: (Ид, ХозОперация, Номер по 1С) per document, as 1С sends changed
    orders back (the site's Ид and number echoed, 1С's own in the requisites)."""
    body = "".join(
        f"""
  <Документ><Ид>{ident}</Ид><Номер>{ident[:8]}</Номер><Дата>2026-12-07</Дата>
    <ХозОперация>{operation}</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта>
    <Курс>1</Курс><Сумма>500</Сумма><Время>12:30:05</Время>
    <ЗначенияРеквизитов>
      <ЗначениеРеквизита><Наименование>Номер по 1С</Наименование><Значение>{number}</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>Дата по 1С</Наименование><Значение>2026-12-07</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>ПометкаУдаления</Наименование><Значение>false</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>Проведен</Наименование><Значение>true</Значение></ЗначениеРеквизита>
      <ЗначениеРеквизита><Наименование>Статус заказа</Наименование><Значение>Открыт</Значение></ЗначениеРеквизита>
    </ЗначенияРеквизитов>
  </Документ>"""
        for ident, operation, number in documents
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация ВерсияСхемы="2.08" '
        f'ДатаФормирования="2026-12-07T13:00:00">{body}\n</КоммерческаяИнформация>'
    ).encode()


def test_courier_documents_go_to_1c_through_the_exchange_and_come_back_recorded(s, caplog):
    caplog.set_level(logging.INFO)
    portal = Portal(s)

    # -- the couriers win their deals; the sink stores them; the actions queue them -------
    async def courier_deals():
        client = portal.client()
        try:
            deals = {}
            for kind, category in (("order", INSTANT), ("return", RETURNS)):
                deal = await client.call(
                    "crm.deal.add",
                    {
                        "fields": {
                            "TITLE": f"Курьер: {kind}",
                            "CATEGORY_ID": category,
                            "STAGE_ID": f"C{category}:WON",
                            "CLOSED": "Y",
                            "COMPANY_ID": COMPANY,
                            "OPPORTUNITY": "500.00",
                            "CURRENCY_ID": "RUB",
                        }
                    },
                )
                await client.call(
                    "crm.deal.productrows.set",
                    {
                        "id": deal,
                        "rows": [
                            {"PRODUCT_ID": 11, "PRICE": 250, "QUANTITY": 2},
                            {"PRODUCT_ID": 12, "PRICE": 1, "QUANTITY": 0},
                        ],
                    },
                )  # a placeholder row
                deals[kind] = deal
            raw = [await client.call("crm.deal.get", {"id": deals[k]}) for k in deals]
        finally:
            await client.aclose()
        return deals, raw

    deals, raw = asyncio.run(courier_deals())

    async def store_deals():
        sinks = Sinks(s)
        try:
            records = [
                sinks.record(
                    "raw.bitrix24.deal", {**d, "_event": {"kind": "UPDATE"}}, f"deal:{d['ID']}"
                )
                for d in raw
            ]
        finally:
            await sinks.close()
        await _sink(s, records)

    asyncio.run(store_deals())
    orders = _changes(s, "egress.onec.instant_order", "instant_order", 1)
    returns = _changes(s, "egress.onec.return", "return", 1)
    (order_id,), (return_id,) = orders, returns

    async def queue(times: int):
        client = portal.client()
        engine = create_async_engine(s.require_database_url())
        targets = Targets(settings=s, bitrix24=client, onec=None, producer=None)
        try:
            xwalk = Crosswalk(engine)
            await xwalk.link("product", "bitrix24", PRODUCT, "11")
            await xwalk.link(
                "counterparty", "onec", str(counterparty_ref("company", COMPANY)), CUSTOMER
            )
            got = []
            for _ in range(times):  # a retry after a timeout runs apply again
                got.append(await InstantOrderToExchange(targets).apply(orders[order_id], xwalk))
                got.append(await ReturnToExchange(targets).apply(returns[return_id], xwalk))
            # A worker whose lease was taken over writes nothing to the queue.
            token = CURRENT.set(Fence({}, 0.0, 1.0, 0.0, fenced="lease taken over"))
            try:
                with pytest.raises(LeaseLost):
                    await InstantOrderToExchange(targets).apply(orders[order_id], xwalk)
            finally:
                CURRENT.reset(token)
            return got
        finally:
            await client.aclose()
            await engine.dispose()

    assert asyncio.run(queue(2)) == [order_id, return_id] * 2
    queued = sql(
        s,
        "SELECT document_id, entity, revision, sent_session FROM "
        "commerceml_order_export ORDER BY id",
    )
    assert queued == [(order_id, "instant_order", 1, None), (return_id, "return", 1, None)]

    # -- 1С's exchange: query without success, again, success, nothing more ---------------
    with TestClient(create_app(s), raise_server_exceptions=False) as bridge:
        onec = OneC(bridge, kind="sale").login(s)
        assert onec.call("init").status_code == 200
        first = _query(onec)
        assert [(r.key, r.payload["operation"]) for r in first] == [
            (order_id, "Заказ товара"),
            (return_id, "Возврат товара"),
        ]
        assert first[0].payload["number"] == str(deals["order"])
        assert [
            (i["product_id"], i["quantity"], i["amount"]) for i in first[0].payload["items"]
        ] == [(PRODUCT, "2", "500.00")]
        assert first[0].payload["counterparties"][0]["id"] == CUSTOMER
        # 1С broke off before `success`: its next exchange gets the same documents.
        onec = OneC(bridge, kind="sale").login(s)
        onec.call("init")
        again = _query(onec)
        assert [r.payload for r in again] == [r.payload for r in first]
        assert onec.call("success").text == "success"
        assert _query(onec) == []

        # 1С sends its documents back (with an order of its own site flow, not ours).
        answer = _answer(
            [
                (order_id, "Заказ товара", "ЗК-000777"),
                (return_id, "Возврат товара", "ВК-000042"),
                ("92", "Заказ товара", "MM92"),
            ]
        )
        resp = onec.call("file", answer, filename="orders.xml")
        assert (resp.status_code, resp.text) == (200, "success")
    acked = sql(s, "SELECT count(*) FROM commerceml_order_export WHERE acknowledged_at IS NOT NULL")
    assert acked == [(2,)]
    answers = count_records(s, "raw.onec.exchange_result", expect_at_least=2)
    assert sorted(m.key().decode() for m in answers) == sorted([order_id, return_id])
    foreign = count_records(s, "raw.onec.customer_order", expect_at_least=1)
    assert [m.key().decode() for m in foreign] == ["92"]

    # -- the sink records 1С's numbers; the status actions write them to the deals --------
    asyncio.run(_sink(s, _records(answers)))
    assert dlq(s, "dlq.normalize") == []
    assert sql(
        s,
        'SELECT onec_number, onec_posted, status FROM "instant_order" WHERE id = %s',
        UUID(order_id),
    ) == [("ЗК-000777", True, "recorded")]
    assert sql(s, 'SELECT number, posted, status FROM "return" WHERE id = %s', UUID(return_id)) == [
        ("ВК-000042", True, "recorded")
    ]
    statuses = _changes(s, "egress.bitrix24.instant_order", "instant_order", 2)
    return_statuses = _changes(s, "egress.bitrix24.return", "return", 2)
    after = _changes(s, "egress.onec.instant_order", "instant_order", 2)

    async def write_back():
        client = portal.client()
        engine = create_async_engine(s.require_database_url())
        targets = Targets(settings=s, bitrix24=client, onec=None, producer=None)
        try:
            xwalk = Crosswalk(engine)
            await InstantOrderStatus(targets).apply(statuses[order_id], xwalk)
            await ReturnStatus(targets).apply(return_statuses[return_id], xwalk)
            # Recorded: the recorded order's next change queues nothing more.
            requeued = await InstantOrderToExchange(targets).apply(after[order_id], xwalk)
            return requeued, [
                await client.call("crm.deal.get", {"id": deals[k]}) for k in ("order", "return")
            ]
        finally:
            await client.aclose()
            await engine.dispose()

    requeued, (order_deal, return_deal) = asyncio.run(write_back())
    assert requeued is None
    fields = (s.flows.deal_status_field, s.flows.deal_document_field)
    assert (order_deal[fields[0]], order_deal[fields[1]]) == ("recorded", "ЗК-000777")
    assert (return_deal[fields[0]], return_deal[fields[1]]) == ("recorded", "ВК-000042")
    assert sql(
        s, "SELECT revision, acknowledged_at IS NOT NULL FROM commerceml_order_export ORDER BY id"
    ) == [(1, True), (1, True)]


def test_a_document_changed_between_query_and_success_goes_again(db_url):
    """1С confirms what its query carried: a revision queued after that query is not
    confirmed by the success, and the next query carries it (same Ид, same row)."""

    async def main():
        engine = create_async_engine(db_url)
        queue, store = ExportQueue(engine), ExchangeStore(engine, 60)
        try:
            assert await queue.put("A", "instant_order", "<Документ><Ид>A</Ид></Документ>") == 1
            assert await queue.put("A", "instant_order", "<Документ><Ид>A</Ид></Документ>") is None
            session = await store.open_session(b"\x01" * 32, "site")
            sent = await store.pending_orders()
            await store.mark_sent(session, sent)
            assert (
                await queue.put(
                    "A", "instant_order", "<Документ><Ид>A</Ид><Номер>2</Номер></Документ>"
                )
                == 2
            )
            unconfirmed = await store.acknowledge_orders(session)
            again = await store.pending_orders()
            await store.mark_sent(session, again)
            confirmed = await store.acknowledge_orders(session)
            return sent, unconfirmed, again, confirmed, await store.pending_orders()
        finally:
            await engine.dispose()

    sent, unconfirmed, again, confirmed, left = asyncio.run(main())
    assert [(o.document_id, o.revision) for o in sent] == [("A", 1)]
    assert unconfirmed == 0
    assert [(o.document_id, o.revision, o.document) for o in again] == [
        ("A", 2, "<Документ><Ид>A</Ид><Номер>2</Номер></Документ>")
    ]
    assert confirmed == 1 and left == []
