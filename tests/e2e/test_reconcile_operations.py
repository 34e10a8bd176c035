"""End-to-end reconcile of the operational records (issue 14, item 1) on the real broker,
PostgreSQL, bridge, workers and both emulators, ``mmctl reconcile`` run as users run it.

* a delivery task the courier worked on (its last version is Bitrix24's) is deleted in the
  portal: listed once as ``deleted``, and ``--repair`` recreates it through the outbox and
  egress (one new task, our key, relinked);
* a ПКО the egress posted in 1С while PostgreSQL still says unposted (1С never pushed the
  posting back): ``differs`` in ``Posted``, repaired by reading it again from 1С;
* a ПКО deleted in 1С (no tombstone over OData): ``deleted``, repaired by the poller's
  deletion record, so PostgreSQL no longer holds it live;
* the 1С order a courier's instant order became is unposted by an accountant: ``differs``
  in ``Posted``, repaired by publishing 1С's answer again on ``raw.onec.result``; a manager
  overwrites the status we wrote on the courier's deal: ``differs`` at Bitrix24, written
  again.

Each repair audited; a second reconcile finds nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from stages.normalize.derive_delivery_task import delivery_task_id
from tests.e2e.conftest import INSTANT
from tests.e2e.test_cash_sla_watch import RECEIPTS, receipt
from tests.e2e.test_courier_flows import (
    counterparty,
    courier_deal,
    emulated,
    odata,
    order,
)
from tests.e2e.test_reconcile import ODATA, drift_set, mmctl, onec_write
from tests.support.stack import onec_product, wait_for

pytestmark = pytest.mark.e2e

ORDERS = "Document_ЗаказКлиента"


def delivered(st, entity: str, target: str) -> None:
    """Every outbox entry of ``entity`` published and delivered to ``target``."""
    st.wait_sql(
        "SELECT count(*) FROM outbox o WHERE o.entity = %s AND (o.published_at IS NULL OR "
        "NOT EXISTS (SELECT 1 FROM egress_delivery d WHERE d.target = %s AND d.entity = "
        "o.entity AND d.entity_id = o.entity_id AND d.last_outbox_id >= o.id))",
        lambda rows: rows == [(0,)],
        60,
        entity,
        target,
    )


def test_operational_records_drift_is_found_once_and_repaired(stack):
    stack.settings = stack.settings.model_copy(
        update={
            "odata": stack.settings.odata.model_copy(
                update={"enabled": True, "base_url": stack.onec_url + ODATA}
            )
        }
    )
    stack.start_emulator()
    stack.start_onec_emulator()
    stack.start_sink()
    stack.start_entity_sink()
    stack.start_egress()
    stack.start_bridge()
    stack.start_enrich()

    ref, posted, gone = (str(uuid.uuid4()) for _ in range(3))
    task_id = str(delivery_task_id(uuid.UUID(ref)))
    assert stack.post_onec("ЗаказКлиента", order(ref, "Москва, Тверская 1")).status_code == 202
    now = datetime.now(UTC)
    for cash, number, is_posted in ((posted, "ПКО-1", False), (gone, "ПКО-2", True)):
        stored = onec_write(stack, RECEIPTS, {**receipt(cash, number, now), "Posted": is_posted})
        assert stack.post_onec("ПриходныйКассовыйОрдер", stored).status_code == 202
    # A courier sells on the spot: a won deal -> the 1С order (posted).
    product, company = str(uuid.uuid4()), str(uuid.uuid4())
    assert stack.post_product(onec_product(product, Description="Чай")).status_code == 202
    assert stack.post_onec("Контрагенты", counterparty(company, "ООО Ромашка")).status_code == 202
    (b24_product,) = wait_for(
        stack, "product in Bitrix24", lambda: stack.emulator_products() or None
    )
    (b24_company,) = wait_for(
        stack, "company in Bitrix24", lambda: emulated(stack, "entities/company") or None
    )
    sale = courier_deal(
        stack, INSTANT, "Продажа у клиента", int(b24_company["ID"]), int(b24_product["id"])
    )
    stack.post_event("ONCRMDEALADD", sale)
    (sold,) = wait_for(stack, "instant order in 1С", lambda: odata(stack, ORDERS) or None)
    [(instant,)] = stack.wait_sql(
        "SELECT id::text FROM instant_order WHERE onec_posted", lambda r: len(r) == 1, 60
    )
    wait_for(
        stack,
        "the deal shows the status",
        lambda: (
            stack.rest("crm.deal.get", {"id": sale}).get("UF_CRM_MM_STATUS") == "recorded" or None
        ),
    )
    (task,) = wait_for(
        stack,
        "task created",
        lambda: [t for t in emulated(stack, "entities/task") if t.get("xmlId") == task_id] or None,
    )
    # The courier takes the task: the row's last version is not 1С's now.
    stack.put_entity("task", task["id"], {"STATUS": "3"})
    stack.post_event("ONTASKUPDATE", task["id"])
    stack.wait_sql(
        "SELECT courier_status, source FROM delivery_task WHERE id = %s",
        lambda r: bool(r) and r[0][0] == "3" and r[0][1] != "onec",
        60,
        task_id,
    )
    # The egress posts the unposted receipt in 1С; nothing tells PostgreSQL.
    wait_for(
        stack,
        "receipt posted in 1С",
        lambda: (
            [
                r
                for r in httpx.get(
                    f"{stack.onec_url}{ODATA}{RECEIPTS}", params={"$format": "json"}, timeout=10
                ).json()["value"]
                if r["Ref_Key"] == posted and r["Posted"]
            ]
            or None
        ),
    )
    delivered(stack, "delivery_task", "bitrix24")
    delivered(stack, "cash_receipt", "onec")
    delivered(stack, "instant_order", "onec")
    delivered(stack, "instant_order", "bitrix24")

    # -- drift behind the pipeline's back ------------------------------------------------------
    stack.delete_entity("task", task["id"])
    httpx.request(
        "DELETE", f"{stack.onec_url}/_emulator/odata/{RECEIPTS}", json={"Ref_Key": gone}, timeout=10
    ).raise_for_status()
    onec_write(stack, ORDERS, {**sold, "Posted": False})  # an accountant unposts it
    stack.rest("crm.deal.update", {"id": sale, "fields": {"UF_CRM_MM_STATUS": "Отменён"}})

    names = ("delivery_task", "cash_receipt", "instant_order")
    code, report = mmctl(stack, *names)
    assert code == 3, report
    assert drift_set(report) == sorted(
        [
            ("delivery_task", "bitrix24", "deleted", task_id),
            ("cash_receipt", "onec", "differs", posted),
            ("cash_receipt", "onec", "deleted", gone),
            ("instant_order", "onec", "differs", instant),
            ("instant_order", "bitrix24", "differs", instant),
        ]
    ), report
    assert {
        (d["canonical_id"], d["target"]): d["fields"]
        for d in report["drift"]
        if d["kind"] == "differs"
    } == {
        (posted, "onec"): {"Posted": {"ours": False, "theirs": True}},
        (instant, "onec"): {"Posted": {"ours": True, "theirs": False}},
        (instant, "bitrix24"): {"UF_CRM_MM_STATUS": {"ours": "recorded", "theirs": "Отменён"}},
    }

    code, report = mmctl(stack, *names, "--repair")
    assert code == 0, report
    assert sorted((r["entity"], r["kind"], r["action"]) for r in report["repairs"]) == sorted(
        [
            ("delivery_task", "deleted", "republished"),
            ("cash_receipt", "differs", "reread"),
            ("cash_receipt", "deleted", "reread"),
            ("instant_order", "differs", "reread"),
            ("instant_order", "differs", "republished"),
        ]
    ), report
    assert sorted(
        stack.sql(
            "SELECT target, details->'before'->>'kind' FROM ops_audit "
            "WHERE action = 'reconcile.repair'"
        )
    ) == sorted(
        [
            (f"delivery_task:{task_id}", "deleted"),
            (f"cash_receipt:{posted}", "differs"),
            (f"cash_receipt:{gone}", "deleted"),
            (f"instant_order:{instant}", "differs"),
            (f"instant_order:{instant}", "differs"),
        ]
    )

    (again,) = wait_for(
        stack,
        "task recreated",
        lambda: [t for t in emulated(stack, "entities/task") if t.get("xmlId") == task_id] or None,
    )
    assert again["id"] != task["id"] and again["title"] == task["title"]
    stack.wait_sql(
        "SELECT id::text, posted, deleted FROM cash_receipt ORDER BY number",
        lambda r: (
            r == [(posted, True, False), (gone, False, True)]
            or r == [(posted, True, False), (gone, True, True)]
        ),
        60,
    )
    stack.wait_sql(
        "SELECT external_id FROM crosswalk WHERE system = 'bitrix24' AND "
        "entity = 'delivery_task' AND canonical_id = %s",
        lambda r: r == [(f"task:{again['id']}",)],
        60,
        task_id,
    )
    assert len(stack.emulator_calls("tasks.task.add")) == 2  # the first and the repair
    stack.wait_sql(
        "SELECT onec_posted, status FROM instant_order", lambda r: r == [(False, "recorded")], 60
    )
    assert len(odata(stack, ORDERS)) == 1  # nothing written to 1С
    wait_for(
        stack,
        "the deal shows our status again",
        lambda: (
            stack.rest("crm.deal.get", {"id": sale}).get("UF_CRM_MM_STATUS") == "recorded" or None
        ),
    )

    for entity, target in (
        ("delivery_task", "bitrix24"),
        ("cash_receipt", "onec"),
        ("instant_order", "onec"),
        ("instant_order", "bitrix24"),
    ):
        delivered(stack, entity, target)
    code, report = mmctl(stack, *names)
    assert (code, report["drift"]) == (0, []), report
