"""Flows 2-4 end to end on the real broker, PostgreSQL and processes, with both emulators:

* deliveries: a 1С order with a delivery address -> a Bitrix24 task for couriers (updated,
  never duplicated); the courier completes it in Bitrix24 -> the portal's event -> the
  enrichment -> the delivery status -> the confirmation in 1С, once;
* instant orders and returns a courier closes in Bitrix24 -> documents in 1С with the
  deal's goods -> the status and 1С number back on the deal;
* cash documents 1С holds unposted -> posted through OData; one posted past its SLA raises
  the alert metric and an event.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from mmstream.serve import free_port
from stages.normalize.derive_delivery_task import delivery_task_id
from tests.e2e.conftest import INSTANT, RETURNS
from tests.support.stack import onec_product, wait_for
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

ZERO = "00000000-0000-0000-0000-000000000000"
MSK = ZoneInfo("Europe/Moscow")


def emulated(stack, path: str) -> list[dict]:
    return httpx.get(f"{stack.emulator_url}/_emulator/{path}", timeout=10).json()


def onec_writes(stack, operation: str) -> list[dict]:
    """The writes the 1С emulator's HTTP service served (``delivery_status``...), repeats
    of a key included."""
    return [
        c
        for c in stack.onec_calls()
        if c["interface"] == "hs" and c["operation"] == operation and c["method"] == "POST"
    ]


def onec_results(stack, operation: str) -> list[dict]:
    """What the 1С emulator recorded per Idempotency-Key for one operation."""
    found = httpx.get(f"{stack.onec_url}/_emulator/operations", timeout=10).json()
    return [r for r in found if r["operation"] == operation]


def odata(stack, entity_set: str) -> list[dict]:
    """The records of one entity set of the emulated base."""
    return httpx.get(
        f"{stack.onec_url}/trade/odata/standard.odata/{entity_set}",
        params={"$format": "json"},
        timeout=10,
    ).json()["value"]


def document(ref: str, number: str, version: str = "AAAAAQ==", **extra) -> dict:
    """A 1С document as the base pushes it."""
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Number": number,
        "Date": "2026-12-06T10:00:00",
        "Posted": True,
        "Организация_Key": "87fa6cc2-e901-11ea-8591-000c29b45b09",
        "Комментарий": "",
        "Ответственный_Key": ZERO,
        **extra,
    }


def order(ref: str, address: str, version: str = "AAAAAQ==") -> dict:
    """A УТ 11 ЗаказКлиента to deliver."""
    return document(
        ref,
        "УТ-000777",
        version,
        ХозяйственнаяОперация="РеализацияКлиенту",
        Статус="КОтгрузке",
        Контрагент_Key=str(uuid.uuid4()),
        Партнер_Key=ZERO,
        Склад_Key=ZERO,
        СуммаДокумента=1500,
        АдресДоставки=address,
        ЖелаемаяДатаОтгрузки="2026-12-07T00:00:00",
        Товары=[],
    )


def test_a_delivery_reaches_the_courier_once_and_its_completion_is_confirmed_to_1c(stack):
    stack.start_emulator()
    stack.start_onec_emulator()
    stack.start_entity_sink()
    stack.start_egress()
    stack.start_bridge()
    stack.start_enrich()

    ref = str(uuid.uuid4())
    task_id = str(delivery_task_id(uuid.UUID(ref)))
    assert stack.post_onec("ЗаказКлиента", order(ref, "Москва, Тверская 1")).status_code == 202
    (task,) = wait_for(
        stack,
        "task created",
        lambda: [t for t in emulated(stack, "entities/task") if t.get("xmlId") == task_id] or None,
    )
    assert task["title"] == "Доставка УТ-000777: Москва, Тверская 1"
    assert "Получить с клиента: 1500.00" in task["description"]
    assert task["responsibleId"] == "1"

    # 1С changes the address: the same task is updated, not a second one added.
    changed = order(ref, "Москва, Тверская 2", version="AAAAAg==")
    assert stack.post_onec("ЗаказКлиента", changed).status_code == 202
    wait_for(
        stack,
        "task updated",
        lambda: (
            [
                t
                for t in emulated(stack, "entities/task")
                if t.get("xmlId") == task_id and t["title"].endswith("Тверская 2")
            ]
            or None
        ),
    )
    assert len(stack.emulator_calls("tasks.task.add")) == 1

    # The courier completes the task in Bitrix24; the portal tells us by an event.
    stack.put_entity(
        "task", task["id"], {"STATUS": "5", "CLOSED_DATE": "2026-12-06T15:30:00+03:00"}
    )
    stack.post_event("ONTASKUPDATE", task["id"])
    (confirmation,) = wait_for(
        stack, "delivery confirmed in 1С", lambda: onec_results(stack, "delivery_status") or None
    )
    assert confirmation["task_id"] == task_id and confirmation["delivery_status"] == "delivered"
    assert confirmation["idempotency_key"] == f"delivery:{task_id}:delivered"
    assert confirmation["document"]["ref_key"] == ref
    stack.wait_sql(
        "SELECT status, courier_status FROM delivery_task WHERE id = %s",
        lambda r: r == [("delivered", "5")],
        30,
        task_id,
    )

    # The courier's change is not written back to the task, and a repeated event changes
    # nothing: one confirmation, one task.
    stack.post_event("ONTASKUPDATE", task["id"])
    stack.wait_sql(
        "SELECT count(*) FROM egress_delivery WHERE entity = 'delivery_task' AND target = 'onec'",
        lambda r: r == [(1,)],
        30,
    )
    assert len(onec_writes(stack, "delivery_status")) == 1
    assert len(stack.emulator_calls("tasks.task.add")) == 1
    assert len(stack.emulator_calls("tasks.task.update")) == 1  # the address change only


def counterparty(ref: str, name: str) -> dict:
    """A 1С Контрагенты record (a company)."""
    return {
        "Ref_Key": ref,
        "DataVersion": "AAAAAQ==",
        "DeletionMark": False,
        "Code": "000000001",
        "Description": name,
        "Parent_Key": ZERO,
        "IsFolder": False,
        "ИНН": "7701234567",
        "ЮрФизЛицо": "ЮрЛицо",
        "Покупатель": True,
    }


def courier_deal(stack, category: int, title: str, company: int, product: int) -> int:
    """A deal a courier filled in and closed as won in their funnel, with one goods row."""
    deal = stack.rest(
        "crm.deal.add",
        {
            "fields": {
                "TITLE": title,
                "CATEGORY_ID": category,
                "STAGE_ID": f"C{category}:WON",
                "CLOSED": "Y",
                "COMPANY_ID": company,
                "OPPORTUNITY": "700.00",
                "CURRENCY_ID": "RUB",
                "ASSIGNED_BY_ID": 1,
                "COMMENTS": "у подъезда",
            }
        },
    )
    assert (
        stack.rest(
            "crm.deal.productrows.set",
            {"id": deal, "rows": [{"PRODUCT_ID": product, "PRICE": 350, "QUANTITY": 2}]},
        )
        is True
    )
    return int(deal)


def test_courier_orders_and_returns_become_1c_documents_and_their_status_returns(stack):
    stack.start_emulator()
    stack.start_onec_emulator()
    stack.start_sink()
    stack.start_entity_sink()
    stack.start_egress()
    stack.start_bridge()
    stack.start_enrich()

    # Master data first (flow 1): the product and the customer reach Bitrix24.
    product, company = str(uuid.uuid4()), str(uuid.uuid4())
    assert stack.post_product(onec_product(product, Description="Чай")).status_code == 202
    assert stack.post_onec("Контрагенты", counterparty(company, "ООО Ромашка")).status_code == 202
    (b24_product,) = wait_for(
        stack, "product in Bitrix24", lambda: stack.emulator_products() or None
    )
    (b24_company,) = wait_for(
        stack, "company in Bitrix24", lambda: emulated(stack, "entities/company") or None
    )

    # A courier sells on the spot and takes a return, each a won deal in its funnel.
    sale = courier_deal(
        stack, INSTANT, "Продажа у клиента", int(b24_company["ID"]), int(b24_product["id"])
    )
    back = courier_deal(
        stack, RETURNS, "Возврат у клиента", int(b24_company["ID"]), int(b24_product["id"])
    )
    stack.post_event("ONCRMDEALADD", sale)
    stack.post_event("ONCRMDEALADD", back)

    orders = wait_for(
        stack, "instant order in 1С", lambda: odata(stack, "Document_ЗаказКлиента") or None
    )
    returns = wait_for(
        stack, "return in 1С", lambda: odata(stack, "Document_ВозвратТоваровОтКлиента") or None
    )
    for (doc,) in (orders, returns):
        assert doc["Контрагент_Key"] == company
        assert doc["Posted"] is True
        assert [
            (line["Номенклатура_Key"], line["Количество"], line["Цена"]) for line in doc["Товары"]
        ] == [(product, 2.0, 350.0)]

    # The status and the 1С number are back on the deals.
    for deal in (sale, back):
        wait_for(
            stack,
            f"deal {deal} shows the status",
            lambda deal=deal: (
                stack.rest("crm.deal.get", {"id": deal}).get("UF_CRM_MM_STATUS") == "recorded"
                or None
            ),
        )
    sale_deal = stack.rest("crm.deal.get", {"id": sale})
    assert sale_deal["UF_CRM_MM_ONEC_NUMBER"] == orders[0]["Number"]
    stack.wait_sql(
        "SELECT status, onec_number, onec_posted FROM instant_order",
        lambda r: r == [("recorded", orders[0]["Number"], True)],
        30,
    )
    stack.wait_sql("SELECT status FROM return", lambda r: r == [("recorded",)], 30)

    # The portal repeats the event: nothing is created twice.
    stack.post_event("ONCRMDEALUPDATE", sale)
    stack.wait_sql(
        "SELECT count(*) FROM egress_delivery WHERE entity = 'instant_order'",
        lambda r: r[0][0] >= 2,
        30,
    )
    assert len(onec_results(stack, "instant_order")) == 1
    assert len(onec_results(stack, "return")) == 1
    assert len(odata(stack, "Document_ЗаказКлиента")) == 1


def cash_receipt(ref: str, number: str, date: datetime, *, posted: bool = False) -> dict:
    """A УТ 11 ПриходныйКассовыйОрдер: a courier hands in a customer's payment."""
    return document(
        ref,
        number,
        Date=date.astimezone(MSK).replace(tzinfo=None, microsecond=0).isoformat(),
        Posted=posted,
        ХозяйственнаяОперация="ПоступлениеОплатыОтКлиента",
        Касса_Key=ZERO,
        Контрагент_Key=ZERO,
        СуммаДокумента=1500,
        ПринятоОт="Курьеров Иван",
        Основание="Оплата заказа",
    )


def advance_report(ref: str, date: str) -> dict:
    """A УТ 11 АвансовыйОтчет of a courier, unposted."""
    return document(
        ref,
        "АО-000001",
        Date=date,
        Posted=False,
        ФизЛицо_Key=str(uuid.uuid4()),
        СуммаДокумента=300,
        НазначениеАванса="Парковка",
    )


def seed(stack, entity_set: str, record: dict) -> None:
    """Put a document into the emulated base (where /Post finds it)."""
    httpx.put(
        f"{stack.onec_url}/_emulator/odata/{entity_set}", json=record, timeout=10
    ).raise_for_status()


def test_unposted_cash_documents_are_posted_and_a_late_one_raises_the_sla_alert(stack):
    stack.settings = stack.settings.model_copy(
        update={"flows": stack.settings.flows.model_copy(update={"cash_sla_s": 900})}
    )
    stack.start_onec_emulator()
    metrics_port = free_port()
    stack.start_entity_sink()
    stack.start_egress(metrics_port=metrics_port)
    stack.start_bridge()
    httpx.put(
        f"{stack.onec_url}/_emulator/rules",
        json={"closed_before": "2026-01-01T00:00:00"},
        timeout=10,
    ).raise_for_status()

    now = datetime.now(UTC)
    late, on_time, done, refused = (str(uuid.uuid4()) for _ in range(4))
    receipts = [
        cash_receipt(late, "0000-000001", now - timedelta(hours=3)),
        cash_receipt(on_time, "0000-000002", now - timedelta(minutes=1)),
        cash_receipt(done, "0000-000003", now - timedelta(hours=5), posted=True),
    ]
    report = advance_report(refused, "2025-12-30T12:00:00")  # before the closed period
    for record in receipts:
        seed(stack, "Document_ПриходныйКассовыйОрдер", record)
        assert stack.post_onec("ПриходныйКассовыйОрдер", record).status_code == 202
    seed(stack, "Document_АвансовыйОтчет", report)
    assert stack.post_onec("АвансовыйОтчет", report).status_code == 202

    def posted():
        held = {r["Ref_Key"]: r["Posted"] for r in odata(stack, "Document_ПриходныйКассовыйОрдер")}
        return held if held == {late: True, on_time: True, done: True} else None

    wait_for(stack, "receipts posted", posted)
    wait_for(
        stack,
        "the refused report dead-lettered",
        lambda: (
            count_records(stack.settings, "dlq.egress.onec.advance_report", 1, timeout_s=2) or None
        ),
    )
    posts = [
        c["path"] for c in stack.onec_calls() if c["interface"] == "odata" and c["method"] == "POST"
    ]
    assert not any(done in p for p in posts)  # posted already: not touched
    assert [p for p in posts if late in p or on_time in p] and len(
        [p for p in posts if late in p]
    ) == 1

    # One deviation event for the late receipt and one for the refused report; none for
    # the receipt posted in time.
    events = count_records(stack.settings, "events.cash_sla", 2, timeout_s=30)
    by_id = {m.key().decode(): json.loads(m.value()) for m in events}
    assert set(by_id) == {late, refused}
    assert by_id[late]["outcome"] == "posted" and by_id[late]["late_by_s"] > 2 * 3600 - 900 - 60
    assert by_id[refused]["outcome"] == "refused"
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert 'mm_cash_sla_deviations_total{document="cash_receipt"} 1.0' in scraped
    assert 'mm_cash_sla_deviations_total{document="advance_report"} 1.0' in scraped
