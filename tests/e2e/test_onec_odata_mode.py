"""1С without our extension: with ``onec.write_via`` = ``odata`` for every flow, the courier's
instant order and return become documents created and posted through the standard OData
interface, and a delivery's outcome is written to its order with PATCH — the HTTP service
is never called. 1С's answer to a create is lost once at a gateway: the look-before-create
finds the document, nothing is created twice, and the status still reaches the deal.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from mmstream.settings import OneCWriteVia
from stages.normalize.derive_delivery_task import delivery_task_id
from tests.e2e.conftest import INSTANT, RETURNS
from tests.e2e.test_courier_flows import (
    counterparty,
    courier_deal,
    emulated,
    odata,
    order,
    seed,
    wait_for,
)
from tests.support.stack import onec_product

pytestmark = pytest.mark.e2e

ORDERS, RETURN_SET = "Document_ЗаказКлиента", "Document_ВозвратТоваровОтКлиента"


@pytest.fixture
def stack_settings(stack_settings):
    """The shared stack's settings (tests/e2e/conftest.py) with every 1С write over OData."""
    via = OneCWriteVia(delivery_status="odata", instant_order="odata", returns="odata")
    onec = stack_settings.onec.model_copy(update={"write_via": via})
    return stack_settings.model_copy(update={"onec": onec})


def odata_calls(stack, operation: str) -> list[dict]:
    return [
        c for c in stack.onec_calls() if c["interface"] == "odata" and c["operation"] == operation
    ]


def test_a_stock_base_gets_documents_and_delivery_outcomes_through_odata_only(stack):
    stack.start_emulator()
    stack.start_onec_emulator()
    stack.start_sink()
    stack.start_entity_sink()
    stack.start_egress()
    stack.start_bridge()
    stack.start_enrich()
    # The gateway loses 1С's answer to the first create: the document is written all the same.
    stack.inject_onec_fault(
        target="odata",
        operation="odata_create",
        after_write=True,
        status=502,
        message="Bad Gateway",
    )

    # Master data: the product and the customer reach Bitrix24.
    product, company = str(uuid.uuid4()), str(uuid.uuid4())
    assert stack.post_product(onec_product(product, Description="Чай")).status_code == 202
    assert stack.post_onec("Контрагенты", counterparty(company, "ООО Ромашка")).status_code == 202
    (b24_product,) = wait_for(
        stack, "product in Bitrix24", lambda: stack.emulator_products() or None
    )
    (b24_company,) = wait_for(
        stack, "company in Bitrix24", lambda: emulated(stack, "entities/company") or None
    )

    # Flow 3: a courier's sale and return, each a won deal.
    sale = courier_deal(
        stack, INSTANT, "Продажа у клиента", int(b24_company["ID"]), int(b24_product["id"])
    )
    back = courier_deal(
        stack, RETURNS, "Возврат у клиента", int(b24_company["ID"]), int(b24_product["id"])
    )
    stack.post_event("ONCRMDEALADD", sale)
    stack.post_event("ONCRMDEALADD", back)

    # Flow 2: a 1С order (in the base, and pushed to us) to deliver.
    ref = str(uuid.uuid4())
    task_id = str(delivery_task_id(uuid.UUID(ref)))
    delivery_order = order(ref, "Москва, Тверская 1")
    seed(stack, ORDERS, {**delivery_order, "Комментарий": "позвонить заранее"})
    assert stack.post_onec("ЗаказКлиента", delivery_order).status_code == 202
    (task,) = wait_for(
        stack,
        "task created",
        lambda: [t for t in emulated(stack, "entities/task") if t.get("xmlId") == task_id] or None,
    )
    stack.put_entity(
        "task", task["id"], {"STATUS": "5", "CLOSED_DATE": "2026-12-06T15:30:00+03:00"}
    )
    stack.post_event("ONTASKUPDATE", task["id"])

    def posted_documents():
        orders = [d for d in odata(stack, ORDERS) if d["Ref_Key"] != ref and d["Posted"]]
        returns = [d for d in odata(stack, RETURN_SET) if d["Posted"]]
        return (orders, returns) if orders and returns else None

    orders, returns = wait_for(stack, "instant order and return posted in 1С", posted_documents)
    for (doc,) in (orders, returns):
        assert doc["Контрагент_Key"] == company
        assert [
            (line["Номенклатура_Key"], line["Количество"], line["Цена"]) for line in doc["Товары"]
        ] == [(product, 2.0, 350.0)]
    # Our canonical ids are the documents' Ref_Keys.
    assert {r[0] for r in stack.sql("SELECT id::text FROM instant_order")} == {orders[0]["Ref_Key"]}

    def confirmed():
        held = next(d for d in odata(stack, ORDERS) if d["Ref_Key"] == ref)
        return (
            held if f"[MM доставка] {task_id}: delivered" in held.get("Комментарий", "") else None
        )

    held = wait_for(stack, "delivery outcome on the order", confirmed)
    assert held["Комментарий"] == f"позвонить заранее\n[MM доставка] {task_id}: delivered"

    # The status and the 1С number reach the deals as in the HTTP-service mode.
    for deal in (sale, back):
        wait_for(
            stack,
            f"deal {deal} shows the status",
            lambda deal=deal: (
                stack.rest("crm.deal.get", {"id": deal}).get("UF_CRM_MM_STATUS") == "recorded"
                or None
            ),
        )
    assert stack.rest("crm.deal.get", {"id": sale})["UF_CRM_MM_ONEC_NUMBER"] == orders[0]["Number"]
    stack.wait_sql(
        "SELECT status, onec_number, onec_posted FROM instant_order",
        lambda r: r == [("recorded", orders[0]["Number"], True)],
        30,
    )

    # The courier edits the recorded deal: a new version reaches the 1С action, which
    # creates, posts and writes nothing again; a repeated task event changes nothing either.
    delivered = "SELECT last_outbox_id FROM egress_delivery WHERE entity = 'instant_order' AND target = 'onec'"
    (before,) = stack.sql(delivered)
    assert (
        stack.rest("crm.deal.update", {"id": sale, "fields": {"COMMENTS": "оплачено картой"}})
        is True
    )
    stack.post_event("ONCRMDEALUPDATE", sale)
    stack.post_event("ONTASKUPDATE", task["id"])
    stack.wait_sql(delivered, lambda r: r and r[0][0] > before[0], 60)
    creates = odata_calls(stack, "odata_create")
    assert sorted(c["status"] for c in creates) == [201, 502]  # one create per document
    assert len([d for d in odata(stack, ORDERS) if d["Ref_Key"] != ref]) == 1
    assert len(odata(stack, RETURN_SET)) == 1
    posts = odata_calls(stack, "odata_post")
    assert len(posts) == 2 and all(c["status"] == 200 for c in posts)  # never a posted one again
    assert len(odata_calls(stack, "odata_patch")) == 1
    # The extension's HTTP service was never called.
    assert [c for c in stack.onec_calls() if c["interface"] == "hs"] == []
    assert httpx.get(f"{stack.onec_url}/_emulator/operations", timeout=10).json() == []
