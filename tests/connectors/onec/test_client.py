"""The 1С egress client against the emulator served over real HTTP: idempotent writes and
replays, key reuse, busy-base retries under the caller's policy, permanent errors, lost
answers, the circuit, OData /Post, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from connectors.onec.client import OneCClient, circuit_verdict, odata_url_of, onec_datetime
from connectors.onec.errors import (
    ODataObjectLocked,
    ODataPeriodClosed,
    ODataPostingRefused,
    OneCAuthFailed,
    OneCBaseBusy,
    OneCDocumentExists,
    OneCForbidden,
    OneCIdempotencyKeyReused,
    OneCInProgress,
    OneCNotFound,
    OneCObjectLocked,
    OneCPeriodClosed,
    OneCTransportError,
    OneCValidationFailed,
)
from mmstream.circuit import CircuitBreaker
from mmstream.errors import CircuitOpen, ConfigurationError, classify
from mmstream.retry import RetryPolicy
from mmstream.settings import OneCSettings, RetrySettings
from tests.connectors.onec.conftest import SERVICE_PASSWORD, SERVICE_USER

ORDERS = "Document_ЗаказКлиента"
SHIPMENTS = "Document_РеализацияТоваровУслуг"
COURIER = uuid.UUID("6ca8e4a2-5f3c-11ee-8c99-0242ac120002")


def make_client(url: str, **overrides) -> OneCClient:
    fields = {
        "base_url": f"{url}/trade/hs/mm/",
        "username": SERVICE_USER,
        "password": SecretStr(SERVICE_PASSWORD),
        "timeout_s": 10.0,
        **overrides,
    }
    # A private breaker with a low threshold: tests must not share state through it.
    return OneCClient(
        OneCSettings(**fields),
        breaker=CircuitBreaker("onec", failure_threshold=3, verdict=circuit_verdict),
    )


def admin(url: str, method: str, path: str, body=None) -> httpx.Response:
    response = httpx.request(method, f"{url}{path}", json=body, timeout=10)
    assert response.status_code < 300, response.text
    return response


def order_body(**overrides) -> dict:
    return {
        "source_id": "deal:42",
        "document_type": "order",
        "date": "2024-05-01T14:30:00",
        "counterparty_id": uuid.uuid4(),
        "currency": "RUB",
        "amount": Decimal("150.50"),
        "lines": [
            {
                "product_id": uuid.uuid4(),
                "quantity": Decimal("2"),
                "price": Decimal("75.25"),
                "amount": Decimal("150.50"),
            }
        ],
        **overrides,
    }


def cash_body(**overrides) -> dict:
    return {
        "source_id": "cash:1",
        "kind": "cash_receipt",
        "date": "2024-05-01T18:00:00",
        "amount": Decimal("1500"),
        "employee_id": COURIER,
        "basis": "выручка курьера",
        **overrides,
    }


def test_every_write_is_created_once_and_replayed_with_the_first_result(onec_service):
    url, app = onec_service
    task, order_ref = uuid.uuid4(), uuid.uuid4()

    ret = {
        "source_id": "deal:43",
        "date": "2024-05-02T10:00:00",
        "counterparty_id": uuid.uuid4(),
        "lines": [{"product_id": uuid.uuid4(), "quantity": 1, "price": 10}],
    }
    advance = {
        "source_id": "adv:1",
        "date": "2024-05-03T09:00:00",
        "employee_id": uuid.uuid4(),
        "amount": 300,
        "purpose": "топливо",
    }
    delivery = {
        "status": "delivered",
        "order_id": order_ref,
        "occurred_at": datetime(2024, 5, 1, 11, 0, tzinfo=UTC),
        "collected_amount": 150.5,
    }
    order, cash = order_body(), cash_body()

    async def main():
        async with make_client(url) as onec:
            writes = [
                lambda: onec.create_instant_order("ev-order-1", order),
                lambda: onec.create_return("ev-return-1", ret),
                lambda: onec.create_cash_document("ev-cash-1", cash),
                lambda: onec.create_advance_report("ev-advance-1", advance),
                lambda: onec.confirm_delivery("ev-delivery-1", task, delivery),
            ]
            firsts = [await w() for w in writes]
            agains = [await w() for w in writes]
            return firsts, agains

    firsts, agains = asyncio.run(main())
    assert [r.replayed for r in firsts] == [False] * 5
    assert [r.replayed for r in agains] == [True] * 5
    assert [r.document for r in agains] == [r.document for r in firsts]
    assert [r.document.type for r in firsts] == [
        ORDERS,
        "Document_ВозвратТоваровОтКлиента",
        "Document_ПриходныйКассовыйОрдер",
        "Document_АвансовыйОтчет",
        ORDERS,
    ]
    # Cash documents and advance reports are posted by default, orders and returns not.
    assert [r.document.posted for r in firsts] == [False, False, True, True, False]
    assert (
        firsts[4].document.ref_key == str(order_ref)
        and firsts[4].raw["delivery_status"] == "delivered"
    )
    # One document per key in the base, whatever the repeats.
    base = app.state.base.sets
    assert len(base[ORDERS]) == 1 and len(base["Document_ПриходныйКассовыйОрдер"]) == 1
    created = [c for c in app.state.calls.list(interface="hs") if c["status"] == 201]
    assert len(created) == 5
    # Money went as numbers, the aware time as the base's wall clock (UTC+3).
    order = next(iter(base[ORDERS].values()))
    assert order["СуммаДокумента"] == 150.5 and order["Товары"][0]["Количество"] == 2
    assert app.state.service.delivery_statuses[str(task)]["status"] == "delivered"


def test_a_reused_key_with_another_body_is_refused_for_good(onec_service):
    url, _ = onec_service

    async def main():
        async with make_client(url) as onec:
            await onec.create_cash_document("ev-cash-2", cash_body(employee_id=None))
            with pytest.raises(OneCIdempotencyKeyReused) as caught:
                await onec.create_cash_document(
                    "ev-cash-2", cash_body(employee_id=None, amount=Decimal("1"))
                )
            return caught.value

    err = asyncio.run(main())
    assert err.status == 409 and not err.retriable and err.alert
    assert err.error_code == "idempotency_key_reused"


def test_a_busy_base_is_retried_by_the_callers_policy_after_its_retry_after(onec_service):
    url, app = onec_service
    admin(
        url,
        "POST",
        "/_emulator/faults",
        {"target": "hs", "status": 503, "retry_after": 1, "count": 2},
    )
    policy = RetryPolicy.from_settings(
        RetrySettings(max_attempts=5, base_delay_s=0.01, max_delay_s=0.05)
    )

    async def main():
        errors, waits = [], []
        async with make_client(url) as onec:
            attempt, started = 0, time.monotonic()
            while True:
                attempt += 1
                try:
                    return await onec.create_cash_document("ev-cash-3", cash_body()), errors, waits
                except Exception as exc:  # noqa: BLE001 — the policy decides
                    errors.append(exc)
                    assert policy.should_retry(exc, attempt, time.monotonic() - started)
                    waits.append(policy.delay(attempt, retry_after=classify(exc).retry_after))
                    await asyncio.sleep(waits[-1])

    result, errors, waits = asyncio.run(main())
    assert [type(e) for e in errors] == [OneCBaseBusy, OneCBaseBusy]
    assert all(e.retriable and e.retry_after == 1.0 for e in errors)
    assert min(waits) >= 1.0  # the base's Retry-After is a floor under the jitter
    assert not result.replayed
    assert [c["status"] for c in app.state.calls.list(operation="cash_document")] == [503, 503, 201]


def test_a_locked_object_is_retriable_and_does_not_open_the_circuit(onec_service):
    url, _ = onec_service
    admin(
        url,
        "POST",
        "/_emulator/faults",
        {
            "target": "hs",
            "operation": "delivery_status",
            "status": 409,
            "code": "object_locked",
            "count": 4,
        },
    )

    async def main():
        async with make_client(url) as onec:
            seen = []
            for _ in range(4):
                with pytest.raises(OneCObjectLocked) as caught:
                    await onec.confirm_delivery(
                        "ev-delivery-2",
                        uuid.uuid4(),
                        {
                            "status": "failed",
                            "shipment_id": str(uuid.uuid4()),
                            "occurred_at": "2024-05-01T12:00:00",
                        },
                    )
                seen.append(caught.value)
            return seen, onec.breaker.state

    seen, state = asyncio.run(main())
    assert all(e.retriable and e.status == 409 for e in seen)
    assert state.name == "CLOSED"  # threshold 3, yet four locks: one object, not the base


def test_permanent_errors_are_not_retriable(onec_service):
    url, _ = onec_service
    admin(
        url,
        "PUT",
        "/_emulator/rules",
        {"closed_before": "2024-06-01T00:00:00", "strict_references": True},
    )

    async def main():
        out = {}
        async with make_client(url) as onec:
            for name, call in {
                "invalid": lambda: onec.create_instant_order("ev-bad", order_body(lines=[])),
                "closed": lambda: onec.create_cash_document("ev-closed", cash_body()),
                "missing": lambda: onec.confirm_delivery(
                    "ev-missing",
                    uuid.uuid4(),
                    {
                        "status": "delivered",
                        "order_id": str(uuid.uuid4()),
                        "occurred_at": "2024-07-01T10:00:00",
                    },
                ),
            }.items():
                try:
                    await call()
                except Exception as exc:  # noqa: BLE001
                    out[name] = exc
            ref = str(uuid.uuid4())
            await onec.create_cash_document(
                "ev-ref-1", cash_body(date="2024-07-01T10:00:00", ref_key=ref)
            )
            with pytest.raises(OneCDocumentExists) as caught:
                await onec.create_cash_document(
                    "ev-ref-2", cash_body(date="2024-07-01T10:00:00", ref_key=ref)
                )
            out["exists"] = caught.value
        async with make_client(url, password=SecretStr("wrong")) as onec:
            with pytest.raises(OneCAuthFailed) as caught:
                await onec.ping()
            out["auth"] = caught.value
        return out

    out = asyncio.run(main())
    assert isinstance(out["invalid"], OneCValidationFailed)
    assert any(e["field"] == "lines" for e in out["invalid"].details["errors"])
    assert isinstance(out["closed"], OneCPeriodClosed) and "2024-06-01" in str(out["closed"])
    assert isinstance(out["missing"], OneCNotFound)
    assert out["exists"].details["ref_key"] == out["exists"].details["ref_key"].lower()
    assert isinstance(out["auth"], OneCAuthFailed) and out["auth"].alert
    assert not any(e.retriable for e in out.values())


def test_forbidden_is_an_alert(onec_service):
    url, _ = onec_service
    admin(url, "POST", "/_emulator/faults", {"target": "hs", "status": 403})

    async def main():
        async with make_client(url) as onec:
            with pytest.raises(OneCForbidden) as caught:
                await onec.create_advance_report(
                    "ev-adv-x",
                    {
                        "source_id": "a",
                        "date": "2024-05-03T09:00:00",
                        "employee_id": str(uuid.uuid4()),
                    },
                )
            return caught.value

    err = asyncio.run(main())
    assert err.alert and not err.retriable


def test_a_lost_answer_is_found_by_key_and_the_retry_writes_nothing_twice(onec_service):
    url, app = onec_service
    admin(
        url,
        "POST",
        "/_emulator/faults",
        {"target": "hs", "operation": "instant_order", "after_write": True, "delay_s": 2.0},
    )

    async def main():
        body = order_body()
        async with make_client(url, timeout_s=0.5) as onec:
            with pytest.raises(OneCTransportError) as caught:
                await onec.create_instant_order("ev-order-lost", body)
            assert await onec.operation("ev-never-sent") is None
            found = await onec.operation("ev-order-lost")
            again = await onec.create_instant_order("ev-order-lost", body)
            return caught.value, found, again

    lost, found, again = asyncio.run(main())
    assert lost.retriable and lost.status is None
    assert found is not None and found.document.number
    assert again.replayed and again.document == found.document
    assert len(app.state.base.sets[ORDERS]) == 1


def test_a_repeat_while_the_first_still_runs_is_told_to_retry(onec_service):
    url, app = onec_service
    admin(url, "POST", "/_emulator/faults", {"target": "hs", "operation": "return", "delay_s": 1.5})
    body = {
        "source_id": "deal:44",
        "date": "2024-05-02T10:00:00",
        "counterparty_id": str(uuid.uuid4()),
        "lines": [{"product_id": str(uuid.uuid4()), "quantity": 1, "price": 10}],
    }

    async def main():
        async with make_client(url) as onec, make_client(url) as other:
            first = asyncio.create_task(onec.create_return("ev-return-slow", body))
            while "ev-return-slow" not in app.state.service.in_flight:
                await asyncio.sleep(0.01)
            with pytest.raises(OneCInProgress) as caught:
                await other.create_return("ev-return-slow", body)
            return await first, caught.value

    result, err = asyncio.run(main())
    assert not result.replayed
    assert err.retriable and err.retry_after == 1.0


def test_the_circuit_opens_after_repeated_server_errors_and_then_sends_nothing(onec_service):
    url, app = onec_service
    admin(url, "POST", "/_emulator/faults", {"target": "hs", "status": 500, "count": -1})

    async def main():
        async with make_client(url) as onec:
            for _ in range(3):
                with pytest.raises(Exception) as caught:
                    await onec.create_cash_document("ev-cash-500", cash_body())
                assert caught.value.retriable
            with pytest.raises(CircuitOpen):
                await onec.create_cash_document("ev-cash-500", cash_body())

    asyncio.run(main())
    assert len(app.state.calls.list(operation="cash_document")) == 3


def test_whether_a_document_is_posted_is_read_before_posting(onec_service):
    url, app = onec_service

    async def main():
        async with make_client(url) as onec:
            created = await onec.create_instant_order(
                "ev-order-read", order_body(document_type="shipment")
            )
            ref = created.document.ref_key
            before = await onec.document_posted(SHIPMENTS, ref)
            await onec.post_document(SHIPMENTS, ref)
            after = await onec.document_posted(SHIPMENTS, ref)
            missing = await onec.document_posted(SHIPMENTS, "00000000-0000-0000-0000-0000000000aa")
            return before, after, missing

    assert asyncio.run(main()) == (False, True, None)


def test_documents_are_posted_through_odata(onec_service):
    url, app = onec_service

    async def main():
        async with make_client(url) as onec:
            created = await onec.create_instant_order(
                "ev-order-post", order_body(document_type="shipment")
            )
            assert not created.document.posted
            await onec.post_document(created.document.type, created.document.ref_key)
            await onec.post_document(
                created.document.type, created.document.ref_key
            )  # re-posting is fine
            after = await onec.operation("ev-order-post")

            marked = await onec.create_instant_order(
                "ev-order-del", order_body(document_type="shipment")
            )
            record = app.state.base.sets[SHIPMENTS][marked.document.ref_key]
            record["DeletionMark"] = True
            with pytest.raises(ODataPostingRefused) as refused:
                await onec.post_document(SHIPMENTS, marked.document.ref_key)

            admin(
                url,
                "POST",
                "/_emulator/faults",
                {
                    "target": "odata",
                    "operation": "odata_post",
                    "status": 500,
                    "message": "Ошибка блокировки объекта. Объект уже заблокирован",
                },
            )
            with pytest.raises(ODataObjectLocked) as locked:
                await onec.post_document(SHIPMENTS, created.document.ref_key)

            admin(url, "PUT", "/_emulator/rules", {"closed_before": "2025-01-01T00:00:00"})
            with pytest.raises(ODataPeriodClosed) as closed:
                await onec.post_document(SHIPMENTS, created.document.ref_key)
            return after, refused.value, locked.value, closed.value

    after, refused, locked, closed = asyncio.run(main())
    assert after.document.posted
    assert not refused.retriable and locked.retriable and not closed.retriable
    posts = app.state.calls.list(operation="odata_post")
    assert [c["status"] for c in posts] == [200, 200, 500, 500, 500]
    assert "guid'" in posts[0]["path"] and posts[0]["path"].endswith("/Post")


def test_the_password_is_in_no_log_line_nor_error(onec_service, caplog):
    url, _ = onec_service
    admin(url, "POST", "/_emulator/faults", {"target": "hs", "status": 500, "count": 2})
    caplog.set_level(logging.DEBUG)

    async def main():
        texts = []
        async with make_client(url) as onec:
            for _ in range(2):
                try:
                    await onec.create_cash_document("ev-cash-log", cash_body())
                except Exception as exc:  # noqa: BLE001
                    texts.append(str(exc) + repr(exc))
            await onec.create_cash_document("ev-cash-log", cash_body())
        async with make_client("http://127.0.0.1:9", timeout_s=1) as dead:
            try:
                await dead.ping()
            except OneCTransportError as exc:
                texts.append(str(exc) + repr(exc) + repr(exc.__cause__) + repr(exc.__context__))
        return texts

    texts = asyncio.run(main())
    assert len(texts) == 3
    logged = [r.getMessage() + str(r.__dict__) for r in caplog.records]
    assert any("1c call failed" in line for line in logged)
    assert not [t for t in texts + logged if SERVICE_PASSWORD in t]


def test_urls_dates_and_keys():
    assert odata_url_of("http://h:8082/trade/hs/mm/") == "http://h:8082/trade/odata/standard.odata/"
    with pytest.raises(ConfigurationError):
        OneCClient(OneCSettings(base_url="http://h/mm/"))
    with pytest.raises(ConfigurationError):
        OneCClient(OneCSettings(base_url="http://user:pw@h/trade/hs/mm/"))
    moscow = ZoneInfo("Europe/Moscow")
    assert (
        onec_datetime(datetime(2024, 5, 1, 11, 0, 30, 999, tzinfo=UTC), moscow)
        == "2024-05-01T14:00:30"
    )
    assert onec_datetime(datetime(2024, 5, 1, 11, 0), moscow) == "2024-05-01T11:00:00"

    async def main():
        async with OneCClient(OneCSettings()) as onec:
            for bad in ("", "has space", "x" * 201, "ключ"):
                with pytest.raises(ValueError):
                    await onec.create_cash_document(bad, {})
            with pytest.raises(ValueError):
                await onec.post_document("Catalog_Номенклатура", uuid.uuid4())

    asyncio.run(main())
