"""The cash SLA watch end to end (flow 4): the real bridge, entity sink and egress worker (whose
timer runs the watch), the broker, PostgreSQL and the 1С emulator. A ПКО past its SLA whose
posting keeps failing is parked — the posting raises nothing then, the watch does, once — and
when 1С takes it at last, the late posting does not raise it a second time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from mmstream.serve import free_port
from tests.support.processes import eventually
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

MSK = ZoneInfo("Europe/Moscow")
ZERO = "00000000-0000-0000-0000-000000000000"
RECEIPTS = "Document_ПриходныйКассовыйОрдер"


def receipt(ref: str, number: str, date: datetime) -> dict:
    """A УТ 11 ПриходныйКассовыйОрдер 1С holds unposted (the base's wall clock)."""
    return {
        "Ref_Key": ref,
        "DataVersion": "AAAAAQ==",
        "DeletionMark": False,
        "Number": number,
        "Date": date.astimezone(MSK).replace(tzinfo=None, microsecond=0).isoformat(),
        "Posted": False,
        "Организация_Key": "87fa6cc2-e901-11ea-8591-000c29b45b09",
        "Комментарий": "",
        "Ответственный_Key": ZERO,
        "ХозяйственнаяОперация": "ПоступлениеОплатыОтКлиента",
        "Касса_Key": ZERO,
        "Контрагент_Key": ZERO,
        "СуммаДокумента": 1500,
        "ПринятоОт": "Курьеров Иван",
        "Основание": "Оплата заказа",
    }


def test_a_parked_late_receipt_is_raised_once_by_the_watch_and_not_again_when_posted(pipeline):
    stack = pipeline
    stack.settings = stack.settings.model_copy(
        update={
            "flows": stack.settings.flows.model_copy(
                update={"cash_sla_s": 900, "cash_sla_watch_interval_s": 0.5}
            ),
            # Parked long enough for the watch to see it, not dead-lettered meanwhile.
            "retry": stack.settings.retry.model_copy(update={"max_attempts": 200, "budget_s": 300}),
        }
    )
    stack.start_onec_emulator()
    # Every /Post fails as a base that is busy (retriable): the receipts are parked.
    stack.inject_onec_fault(target="odata", operation="odata_post", status=503, count=-1)
    metrics_port = free_port()
    stack.start_entity_sink()
    stack.start_egress(metrics_port=metrics_port)
    stack.start_bridge()

    now = datetime.now(UTC)
    late, on_time = str(uuid.uuid4()), str(uuid.uuid4())
    for ref, number, dated in (
        (late, "0000-000011", now - timedelta(hours=3)),
        (on_time, "0000-000012", now - timedelta(minutes=1)),
    ):
        record = receipt(ref, number, dated)
        httpx.put(
            f"{stack.onec_url}/_emulator/odata/{RECEIPTS}", json=record, timeout=10
        ).raise_for_status()
        assert stack.post_onec("ПриходныйКассовыйОрдер", record).status_code == 202

    raised = stack.wait_sql(
        "SELECT document_id, outcome, raised_by, published_at IS NOT NULL FROM cash_sla_deviation",
        lambda rows: rows and rows[0][3],
        90,
    )
    assert raised == [(late, "parked", "watch", True)]

    # 1С takes postings again: the delayed path posts both, the late one late.
    httpx.delete(f"{stack.onec_url}/_emulator/faults", timeout=10).raise_for_status()

    def posted():
        stack.assert_alive()
        held = httpx.get(
            f"{stack.onec_url}/trade/odata/standard.odata/{RECEIPTS}",
            params={"$format": "json"},
            timeout=10,
        ).json()["value"]
        return all(r["Posted"] for r in held if r["Ref_Key"] in (late, on_time)) or None

    eventually(posted, 90, interval_s=0.3, message="receipts posted after the fault")
    stack.wait_sql(
        "SELECT count(*) FROM egress_delivery WHERE entity = 'cash_receipt' "
        "AND external_id IS NOT NULL",
        lambda rows: rows[0][0] == 2,
        30,
    )

    # Several watch ticks later: still the one event, and the metric counted it once.
    events = count_records(stack.settings, "events.cash_sla", 1, timeout_s=30, quiet_s=3.0)
    assert [(m.key().decode(), json.loads(m.value())["outcome"]) for m in events] == [
        (late, "parked")
    ]
    assert json.loads(events[0].value())["late_by_s"] > 3 * 3600 - 900 - 120
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert 'mm_cash_sla_deviations_total{document="cash_receipt"} 1.0' in scraped
    assert stack.sql("SELECT document_id, outcome FROM cash_sla_deviation") == [(late, "parked")]
