"""Courier objects whose Bitrix24 side is gone (issue 14, item 2), end to end on the real
broker, PostgreSQL, bridge, workers and both emulators.

`make run`, Ctrl-C, `make run` again: PostgreSQL keeps its crosswalk while the emulated
portal starts empty and reissues ids; the same happens for real when someone deletes a task
or a deal in Bitrix24.

* a delivery task is recreated (looked up by its ``XML_ID`` first) and relinked, even when
  the id it gets was another delivery task's before: no "… is linked to … already", and the
  other task's link is not used to overwrite the new holder of its old id;
* the status of an instant order whose deal was deleted has nowhere to go: it is skipped
  with a warning, not dead-lettered.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from stages.normalize.derive_delivery_task import delivery_task_id
from tests.e2e.conftest import INSTANT
from tests.e2e.test_courier_flows import (
    counterparty,
    courier_deal,
    emulated,
    odata,
    order,
    wait_for,
)
from tests.support.stack import onec_product
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e


def xwalk(st, entity: str, canonical_id: str) -> str | None:
    rows = st.sql(
        "SELECT external_id FROM crosswalk WHERE system = 'bitrix24' AND "
        "entity = %s AND canonical_id = %s",
        entity,
        canonical_id,
    )
    return rows[0][0] if rows else None


def tasks_of(st, task_id: str) -> list[dict]:
    return [t for t in emulated(st, "entities/task") if t.get("xmlId") == task_id]


def test_delivery_tasks_are_recreated_after_a_portal_reset_and_a_gone_deal_takes_no_status(stack):
    stack.start_emulator()
    stack.start_onec_emulator()
    stack.start_entity_sink()
    stack.start_egress()
    stack.start_bridge()
    stack.start_enrich()

    # (a) Two deliveries reach the couriers: tasks 1 (A) and 2 (B).
    refs = [str(uuid.uuid4()) for _ in range(2)]
    ids = [str(delivery_task_id(uuid.UUID(ref))) for ref in refs]
    for n, ref in enumerate(refs):
        assert stack.post_onec("ЗаказКлиента", order(ref, f"Тверская {n}")).status_code == 202
        (task,) = wait_for(stack, f"task {n}", lambda n=n: tasks_of(stack, ids[n]) or None)
        assert task["id"] == str(n + 1)

    # The link is written when the delivery is recorded, just after the task is created.
    def linked():
        links = [xwalk(stack, "delivery_task", i) for i in ids]
        return links if None not in links else None

    assert wait_for(stack, "both tasks linked", linked) == ["task:1", "task:2"]

    # The portal is reset. B changes first: its task 2 is gone, recreated as task 1 — A's
    # old id; then A changes: task 1 is B's now, so A's is created again, not written over B.
    httpx.post(f"{stack.emulator_url}/_emulator/reset", timeout=10).raise_for_status()
    for n in (1, 0):
        changed = order(refs[n], f"Тверская {n} корп. 2", version="AAAAAg==")
        assert stack.post_onec("ЗаказКлиента", changed).status_code == 202
        wait_for(
            stack,
            f"task {n} recreated",
            lambda n=n: (
                [t for t in tasks_of(stack, ids[n]) if t["title"].endswith("корп. 2")] or None
            ),
        )
    tasks = {n: tasks_of(stack, ids[n]) for n in (0, 1)}
    assert [len(tasks[0]), len(tasks[1])] == [1, 1]
    assert [tasks[1][0]["id"], tasks[0][0]["id"]] == ["1", "2"]
    assert wait_for(
        stack,
        "both tasks relinked",
        lambda: (
            (links := [xwalk(stack, "delivery_task", i) for i in ids]) == ["task:2", "task:1"]
            and links
        ),
    ) == ["task:2", "task:1"]
    assert len(stack.emulator_calls("tasks.task.add")) == 2  # the call log restarts on reset
    # B's task (id 1) was never written with A's data.
    assert all(
        str(c["params"].get("taskId")) != "1"
        for c in stack.emulator_calls("tasks.task.update")
        if "Тверская 0" in str(c["params"])
    )

    # (b) A courier's instant order; its deal is deleted in Bitrix24 while 1С records the
    # document (1С answers slowly), so the status has no deal to go to.
    product, company = str(uuid.uuid4()), str(uuid.uuid4())
    assert stack.post_product(onec_product(product, Description="Чай")).status_code == 202
    assert stack.post_onec("Контрагенты", counterparty(company, "ООО Ромашка")).status_code == 202
    (b24_product,) = wait_for(
        stack, "product in Bitrix24", lambda: stack.emulator_products() or None
    )
    (b24_company,) = wait_for(
        stack, "company in Bitrix24", lambda: emulated(stack, "entities/company") or None
    )
    stack.inject_onec_fault(target="hs", operation="instant_order", delay_s=2, count=1)
    sale = courier_deal(
        stack, INSTANT, "Продажа у клиента", int(b24_company["ID"]), int(b24_product["id"])
    )
    stack.post_event("ONCRMDEALADD", sale)
    wait_for(
        stack,
        "the deal's goods read",
        lambda: (
            [
                c
                for c in stack.emulator_calls("crm.deal.productrows.get")
                if str(c["params"].get("id")) == str(sale)
            ]
            or None
        ),
    )
    resp = httpx.delete(f"{stack.emulator_url}/_emulator/entities/deal/{sale}", timeout=10)
    assert resp.status_code == 200, resp.text
    wait_for(stack, "instant order in 1С", lambda: odata(stack, "Document_ЗаказКлиента") or None)
    egress = stack.procs["egress"].log_path
    wait_for(
        stack,
        "the status skipped",
        lambda: (
            f"deal {sale} is gone from the portal" in egress.read_text("utf-8", errors="replace")
            or None
        ),
    )
    stack.wait_sql("SELECT status FROM instant_order", lambda r: r == [("recorded",)], 30)

    # Nothing dead-lettered, nothing left waiting, no refused link.
    stack.wait_sql("SELECT count(*) FROM egress_parked", lambda r: r == [(0,)], 30)
    for topic in ("dlq.egress.bitrix24.delivery_task", "dlq.egress.bitrix24.instant_order"):
        assert count_records(stack.settings, topic, timeout_s=3) == [], topic
    text = egress.read_text("utf-8", errors="replace")
    assert "is linked to" not in text
    assert "recreating it" in text and "stale link dropped" in text
