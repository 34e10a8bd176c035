"""Bitrix24Client against the emulator, through httpx.ASGITransport (a real in-process HTTP
stack), plus the emulator's own behaviour: envelope, paging, batch, faults, limits."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

import httpx
import pytest

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import (
    AuthFailed,
    Bitrix24Error,
    InvalidRequest,
    MethodNotFound,
    QueryLimitExceeded,
    ServerError,
    TransportError,
)
from devstack.emulators.bitrix24 import create_app
from mmstream.errors import ConfigurationError
from mmstream.retry import RetryPolicy
from mmstream.serve import free_port
from mmstream.settings import Bitrix24Settings, RetrySettings

SECRET = "s3cr3tW3bh00kC0de"
HOOK_PATH = f"/rest/7/{SECRET}/"
BASE = "http://portal.test"


def run(coro):
    return asyncio.run(coro)


def new_app(**kwargs):
    kwargs.setdefault("webhook_path", HOOK_PATH)
    # A generous portal limit unless a test is about the limit.
    kwargs.setdefault("rate_per_s", 1000.0)
    kwargs.setdefault("burst", 1000)
    return create_app(**kwargs)


def new_client(app, *, url: str = BASE + HOOK_PATH, **settings) -> Bitrix24Client:
    settings.setdefault("rate_per_s", 1_000_000.0)
    settings.setdefault("burst", 1000)
    return Bitrix24Client(
        Bitrix24Settings(webhook_url=url, **settings),
        transport=httpx.ASGITransport(app=app),
    )


def admin(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


def error_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err)) + repr(err) + str(err)


async def add_product(client: Bitrix24Client, fields: dict, iblock_id: int = 14) -> int:
    """``catalog.product.add`` through the client; the new id (the egress action's call,
    stages/egress/bitrix24_product.py, made directly)."""
    result = await client.call("catalog.product.add", {"fields": {"iblockId": iblock_id, **fields}})
    return int(result["element"]["id"])


async def find_product(client: Bitrix24Client, xml_id: str, iblock_id: int = 14) -> int | None:
    """The oldest catalog product with ``xml_id``, or None (``catalog.product.list``)."""
    result = await client.call(
        "catalog.product.list",
        {
            "select": ["id", "iblockId", "xmlId"],
            "filter": {"iblockId": iblock_id, "xmlId": xml_id},
            "order": {"id": "ASC"},
        },
    )
    rows = (result or {}).get("products") or []
    return int(rows[0]["id"]) if rows else None


# ---- the client ---------------------------------------------------------------------------


def test_the_51st_rapid_call_is_refused_before_executing():
    # The portal: burst 50 and a drain so slow the test's own duration cannot matter.
    app = new_app(rate_per_s=0.01, burst=50)

    async def scenario():
        async with new_client(app, rate_per_s=1_000_000.0, burst=1000) as client:
            for i in range(50):
                await add_product(client, {"name": f"p{i}", "xmlId": f"g{i}"})
            with pytest.raises(QueryLimitExceeded) as caught:
                await add_product(client, {"name": "p50", "xmlId": "g50"})
            return caught.value

    err = run(scenario())
    assert err.retriable and err.status == 503 and err.error == "QUERY_LIMIT_EXCEEDED"
    emulator = app.state.emulator
    assert len(emulator.store.products) == 50
    assert emulator.calls[-1]["status"] == 503
    assert [c["status"] for c in emulator.calls[:50]] == [200] * 50


def test_a_refusal_penalizes_the_client_bucket():
    # Another client has filled the portal's bucket; ours (2/s, burst 5) still looks empty.
    app = new_app(rate_per_s=0.01, burst=1)

    async def scenario():
        async with new_client(app, rate_per_s=2.0, burst=5) as client:
            await client.call(
                "catalog.product.list", {"select": ["id", "iblockId"], "filter": {"iblockId": 14}}
            )
            with pytest.raises(QueryLimitExceeded):
                await client.call("catalog.product.get", {"id": 1})
            return client.bucket.rate_per_s, client.bucket.try_acquire()

    rate, wait = run(scenario())
    # The rate halves (2/s -> 1/s) and the bucket is held full for one drain interval at the
    # new rate (1 s), then one more slot's worth (1 s).
    assert rate == pytest.approx(1.0, abs=0.01)
    assert wait == pytest.approx(2.0, abs=0.05)


def test_the_client_limiter_keeps_calls_under_the_portal_limit():
    # One slot of headroom on the portal absorbs jitter in transit time: a call delayed on
    # the way followed by a fast one reaches the portal closer together than it left.
    app = new_app(rate_per_s=50.0, burst=4)

    async def scenario():
        async with new_client(app, rate_per_s=50.0, burst=3) as client:
            start = time.monotonic()
            for i in range(10):
                await add_product(client, {"name": f"p{i}", "xmlId": f"g{i}"})
            return time.monotonic() - start

    elapsed = run(scenario())
    assert all(c["status"] == 200 for c in app.state.emulator.calls)
    # Three at once, then seven more at 50/s.
    assert elapsed >= 7 / 50 - 0.005


def test_injected_server_errors_then_success():
    app = new_app()

    async def scenario():
        async with admin(app) as adm, new_client(app) as client:
            r = await adm.post(
                "/_emulator/faults",
                json={
                    "method": "catalog.product.add",
                    "status": 503,
                    "error": "INTERNAL_SERVER_ERROR",
                    "description": "boom",
                    "times": 3,
                },
            )
            assert r.status_code == 200
            failures = []
            for _ in range(3):
                with pytest.raises(ServerError) as caught:
                    await add_product(client, {"name": "A", "xmlId": "g"})
                failures.append(caught.value)
            product_id = await add_product(client, {"name": "A", "xmlId": "g"})
            calls = (await adm.get("/_emulator/calls")).json()
            return failures, product_id, calls

    failures, product_id, calls = run(scenario())
    assert all(f.retriable and f.status == 503 and f.description == "boom" for f in failures)
    # Refused before executing: exactly one product.
    assert list(app.state.emulator.store.products) == [product_id]
    assert [c["status"] for c in calls] == [503, 503, 503, 200]
    assert calls[0]["params"]["fields"]["xmlId"] == "g"


def test_retry_policy_drives_the_client_through_transient_faults():
    app = new_app()
    policy = RetryPolicy.from_settings(
        RetrySettings(max_attempts=5, base_delay_s=0.001, max_delay_s=0.002, budget_s=10)
    )

    async def scenario():
        async with admin(app) as adm, new_client(app) as client:
            await adm.post("/_emulator/faults", json={"method": "*", "status": 500, "times": 3})
            start, attempt = time.monotonic(), 0
            while True:
                attempt += 1
                try:
                    return attempt, await add_product(client, {"name": "A", "xmlId": "g"})
                except Bitrix24Error as exc:
                    if not policy.should_retry(exc, attempt, time.monotonic() - start):
                        raise
                    await asyncio.sleep(policy.delay(attempt, retry_after=exc.retry_after))

    attempts, product_id = run(scenario())
    assert attempts == 4
    assert product_id in app.state.emulator.store.products


def test_injected_400_is_invalid_request_for_the_matching_xml_id_only():
    app = new_app()

    async def scenario():
        async with admin(app) as adm, new_client(app) as client:
            await adm.post(
                "/_emulator/faults",
                json={
                    "method": "catalog.product.add",
                    "status": 400,
                    "error": "",
                    "description": "Bad product",
                    "times": 5,
                    "xml_id": "bad",
                },
            )
            good = await add_product(client, {"name": "ok", "xmlId": "good"})
            with pytest.raises(InvalidRequest) as caught:
                await add_product(client, {"name": "no", "xmlId": "bad"})
            return good, caught.value

    good, err = run(scenario())
    assert not err.retriable
    assert (err.status, err.error, err.description) == (400, "", "Bad product")
    assert [p["xmlId"] for p in app.state.emulator.store.products.values()] == ["good"]


def test_real_validation_errors_are_invalid_request():
    app = new_app()

    async def scenario():
        async with new_client(app) as client:
            with pytest.raises(InvalidRequest) as missing_name:
                await client.call("catalog.product.add", {"fields": {"iblockId": 14}})
            with pytest.raises(InvalidRequest) as no_select:
                await client.call(
                    "catalog.product.list", {"select": ["name"], "filter": {"iblockId": 14}}
                )
            with pytest.raises(InvalidRequest) as absent:
                await client.call("catalog.product.update", {"id": 999, "fields": {"name": "x"}})
            return missing_name.value, no_select.value, absent.value

    missing_name, no_select, absent = run(scenario())
    assert missing_name.description == "Required fields: name"
    assert no_select.description == "Required select fields: id, iblockId"
    assert absent.description == "product does not exist."


def test_wrong_webhook_code_is_auth_failed():
    app = new_app()

    async def scenario():
        async with new_client(app, url=BASE + "/rest/7/wrongcode/") as client:
            with pytest.raises(AuthFailed) as caught:
                await find_product(client, "g")
            return caught.value

    err = run(scenario())
    assert (err.status, err.error) == (401, "NO_AUTH_FOUND")
    assert err.alert and not err.retriable


def test_unknown_method_is_method_not_found():
    app = new_app()

    async def scenario():
        async with new_client(app) as client:
            with pytest.raises(MethodNotFound) as caught:
                await client.call("catalog.product.frobnicate", {})
            return caught.value

    err = run(scenario())
    assert (err.status, err.error) == (404, "ERROR_METHOD_NOT_FOUND")


def test_method_names_cannot_rewrite_the_url():
    app = new_app()

    async def scenario():
        async with new_client(app) as client:
            for bad in ("../admin", "crm.product.get?id=1", "a/b", ""):
                with pytest.raises(ValueError):
                    await client.call(bad, {})

    run(scenario())
    assert app.state.emulator.calls == []


@pytest.mark.parametrize(
    "url",
    [f"portal.test/rest/1/{SECRET}/", f"ftp://portal.test/rest/1/{SECRET}/", "https://portal.test"],
)
def test_invalid_webhook_url_is_a_configuration_error_without_the_secret(url):
    with pytest.raises(ConfigurationError) as caught:
        Bitrix24Client(Bitrix24Settings(webhook_url=url))
    assert SECRET not in error_text(caught.value)


def test_non_json_answers_are_handled():
    async def proxy_error_page(scope, receive, send):
        # Stands in for a reverse proxy in front of the portal.
        await send(
            {
                "type": "http.response.start",
                "status": 502,
                "headers": [(b"content-type", b"text/html")],
            }
        )
        await send({"type": "http.response.body", "body": b"<html>502 Bad Gateway</html>"})

    async def scenario():
        async with new_client(proxy_error_page) as client:
            with pytest.raises(ServerError) as caught:
                await client.call("catalog.product.list", {})
            return caught.value

    err = run(scenario())
    assert err.retriable and err.status == 502
    assert "502 Bad Gateway" in err.description


# ---- the secret stays out of errors and logs ---------------------------------------------


def test_the_webhook_secret_never_appears_in_errors_or_logs(caplog):
    app = new_app(rate_per_s=0.01, burst=2)
    caplog.set_level(logging.DEBUG)

    async def silent_server():
        async def hold(reader, writer):
            await asyncio.sleep(5)
            writer.close()

        return await asyncio.start_server(hold, "127.0.0.1", 0)

    async def scenario():
        errors = []
        async with admin(app) as adm:
            await adm.post(
                "/_emulator/faults",
                json={
                    "method": "catalog.product.add",
                    "status": 400,
                    "error": "",
                    "description": "Bad",
                    "times": 1,
                },
            )
        async with new_client(app) as client:
            for call in (
                lambda: add_product(client, {"name": "x"}),  # injected 400
                lambda: client.call("no.such.method", {}),  # 404
                lambda: client.call("catalog.product.get", {"id": 1}),  # 503 over the limit
            ):
                with pytest.raises(Bitrix24Error) as caught:
                    await call()
                errors.append(caught.value)
        # Connection refused.
        async with Bitrix24Client(
            Bitrix24Settings(
                webhook_url=f"http://127.0.0.1:{free_port()}{HOOK_PATH}", timeout_s=2.0
            )
        ) as c:
            with pytest.raises(TransportError) as caught:
                await c.call("catalog.product.list", {})
            errors.append(caught.value)
        # A server that accepts and never answers: a read timeout.
        server = await silent_server()
        port = server.sockets[0].getsockname()[1]
        async with Bitrix24Client(
            Bitrix24Settings(webhook_url=f"http://127.0.0.1:{port}{HOOK_PATH}", timeout_s=0.2)
        ) as c:
            with pytest.raises(TransportError) as caught:
                await c.call("catalog.product.list", {})
            errors.append(caught.value)
        server.close()
        return errors

    errors = run(scenario())
    assert [type(e).__name__ for e in errors] == [
        "InvalidRequest",
        "MethodNotFound",
        "QueryLimitExceeded",
        "TransportError",
        "TransportError",
    ]
    assert errors[-1].error == "ReadTimeout"
    for err in errors:
        assert SECRET not in error_text(err)
        assert err.method and err.method in str(err)
    # httpx logs every request URL at INFO: it must reach the log redacted.
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "HTTP Request: POST http://portal.test/<webhook>/catalog.product.add.json" in m
        for m in messages
    )
    assert not any(SECRET in m for m in messages)


# ---- the emulator -------------------------------------------------------------------------


def emulator_call(app, method: str, **kwargs) -> httpx.Response:
    async def go():
        async with admin(app) as http:
            return await http.request(
                kwargs.pop("verb", "POST"), f"{HOOK_PATH}{method}.json", **kwargs
            )

    return run(go())


def test_envelope_has_the_real_time_block():
    app = new_app()
    body = emulator_call(
        app, "catalog.product.add", json={"fields": {"iblockId": 14, "name": "A"}}
    ).json()
    assert set(body) == {"result", "time"}
    assert set(body["time"]) == {
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
        "operating",
        "operating_reset_at",
    }
    assert body["time"]["operating_reset_at"] > body["time"]["start"]
    element = body["result"]["element"]
    # Without an external code the portal stores the id as one.
    assert element["xmlId"] == str(element["id"])


def test_form_encoded_and_query_parameters():
    app = new_app()
    r = emulator_call(
        app,
        "catalog.product.add",
        content="fields[iblockId]=14&fields[name]=Form&fields[xmlId]=f1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["result"]["element"]["iblockId"] == 14
    r = emulator_call(
        app,
        "catalog.product.list",
        verb="GET",
        params=[
            ("select[]", "id"),
            ("select[]", "iblockId"),
            ("select[]", "name"),
            ("filter[iblockId]", "14"),
            ("filter[xmlId]", "f1"),
        ],
    )
    assert r.status_code == 200, r.text
    assert [p["name"] for p in r.json()["result"]["products"]] == ["Form"]
    assert set(r.json()["result"]["products"][0]) == {"id", "iblockId", "name"}


def test_list_paging_total_and_next():
    app = new_app()
    for i in range(120):
        app.state.emulator.store.add({"iblockId": 14, "name": f"p{i}"})
    query = {"select": ["id", "iblockId"], "filter": {"iblockId": 14}}
    first = emulator_call(app, "catalog.product.list", json=query).json()
    assert (len(first["result"]["products"]), first["total"], first["next"]) == (50, 120, 50)
    last = emulator_call(app, "catalog.product.list", json={**query, "start": 100}).json()
    assert len(last["result"]["products"]) == 20 and "next" not in last
    fast = emulator_call(
        app,
        "catalog.product.list",
        json={
            **query,
            "start": -1,
            "filter": {"iblockId": 14, ">id": 110},
            "order": {"id": "DESC"},
        },
    ).json()
    assert [p["id"] for p in fast["result"]["products"]] == list(range(120, 110, -1))
    assert "total" not in fast


def test_crm_product_methods_share_the_store():
    app = new_app()
    r = emulator_call(
        app, "crm.product.add", json={"fields": {"NAME": "Legacy", "XML_ID": "x1", "PRICE": 10}}
    )
    product_id = r.json()["result"]
    assert isinstance(product_id, int)
    got = emulator_call(app, "crm.product.get", json={"id": product_id}).json()["result"]
    assert (got["ID"], got["NAME"], got["XML_ID"], got["CATALOG_ID"]) == (
        str(product_id),
        "Legacy",
        "x1",
        "14",
    )
    listed = emulator_call(
        app, "crm.product.list", json={"filter": {"XML_ID": "x1"}, "select": ["ID", "NAME"]}
    ).json()
    assert listed["result"] == [{"ID": str(product_id), "NAME": "Legacy"}]
    assert listed["total"] == 1
    catalog = emulator_call(app, "catalog.product.get", json={"id": product_id}).json()
    assert catalog["result"]["product"]["xmlId"] == "x1"
    bad = emulator_call(app, "crm.product.get", json={"id": 0})
    assert bad.status_code == 400
    assert bad.json() == {"error": "", "error_description": "ID is not defined or invalid."}


def test_batch_mix_of_good_and_bad_commands_answers_like_the_real_portal():
    app = new_app()

    async def scenario():
        async with new_client(app) as client:
            product_id = await add_product(client, {"name": "A", "xmlId": "g"})
            result = await client.call(
                "batch",
                {
                    "halt": 0,
                    "cmd": {
                        str(product_id + 1000): f"crm.product.get?id={product_id}",
                        "0": "crm.product.get?id=0",
                        "1": "crm.product.get?id=999999",
                    },
                },
            )
            return product_id, result

    product_id, result = run(scenario())
    key = str(product_id + 1000)
    assert set(result) == {"result", "result_error", "result_total", "result_next", "result_time"}
    assert list(result["result"]) == [key]
    assert result["result"][key]["ID"] == str(product_id)
    # As in crm_get_batch_mix_success_and_errors.json: a LIST of errors with empty codes.
    assert result["result_error"] == [
        {"error": "", "error_description": "ID is not defined or invalid."},
        {"error": "", "error_description": "Not found"},
    ]
    assert result["result_total"] == [] and result["result_next"] == []
    assert list(result["result_time"]) == [key]
    assert result["result_time"][key]["date_start"]
    # One HTTP call; the batch is accounted as one request plus its commands.
    calls = app.state.emulator.calls
    assert [c["method"] for c in calls if not c["in_batch"]] == ["catalog.product.add", "batch"]


def test_batch_halt_references_totals_and_limits():
    app = new_app()

    async def scenario():
        async with new_client(app) as client:
            chained = await client.call(
                "batch",
                {
                    "halt": 1,
                    "cmd": {
                        "add": "catalog.product.add?fields[iblockId]=14&fields[name]=B&fields[xmlId]=b",
                        "get": "catalog.product.get?id=$result[add][element][id]",
                        "list": "catalog.product.list?select[]=id&select[]=iblockId"
                        "&filter[iblockId]=14",
                        "bad": "catalog.product.get?id=424242",
                        "never": "catalog.product.delete?id=$result[add][element][id]",
                    },
                },
            )
            with pytest.raises(InvalidRequest) as too_long:
                await client.call("batch", {"cmd": {str(i): "crm.product.list" for i in range(51)}})
            return chained, too_long.value

    chained, too_long = run(scenario())
    assert chained["result"]["get"]["product"]["xmlId"] == "b"
    assert chained["result_total"] == {"list": 1}
    assert chained["result_error"] == {
        "bad": {"error": 0, "error_description": "product does not exist."}
    }
    # halt=1 stopped before the delete.
    assert "never" not in chained["result"]
    assert len(app.state.emulator.store.products) == 1
    assert too_long.error == "ERROR_BATCH_LENGTH_EXCEEDED"


def test_batch_commands_see_injected_faults():
    app = new_app()

    async def scenario():
        async with admin(app) as adm, new_client(app) as client:
            await adm.post(
                "/_emulator/faults",
                json={
                    "method": "catalog.product.add",
                    "status": 400,
                    "error": "",
                    "description": "nope",
                    "xml_id": "x2",
                },
            )
            return await client.call(
                "batch",
                {
                    "cmd": [
                        "catalog.product.add?fields[iblockId]=14&fields[name]=one&fields[xmlId]=x1",
                        "catalog.product.add?fields[iblockId]=14&fields[name]=two&fields[xmlId]=x2",
                    ]
                },
            )

    result = run(scenario())
    # PHP encoding: results keyed 0 come out as a list, errors keyed 1 as an object.
    assert [r["element"]["xmlId"] for r in result["result"]] == ["x1"]
    assert result["result_error"] == {"1": {"error": "", "error_description": "nope"}}
    assert [p["xmlId"] for p in app.state.emulator.store.products.values()] == ["x1"]


def test_slow_fault_executes_then_delays_and_error_fault_delays_then_refuses():
    app = new_app()

    async def scenario():
        async with admin(app) as adm, new_client(app) as client:
            await adm.post(
                "/_emulator/faults",
                json={"method": "catalog.product.add", "status": 200, "delay_s": 0.2},
            )
            start = time.monotonic()
            await add_product(client, {"name": "slow", "xmlId": "s"})
            slow = time.monotonic() - start
            await adm.post(
                "/_emulator/faults",
                json={"status": 503, "delay_s": 0.2, "error": "INTERNAL_SERVER_ERROR"},
            )
            start = time.monotonic()
            with pytest.raises(ServerError):
                await add_product(client, {"name": "late", "xmlId": "l"})
            return slow, time.monotonic() - start

    slow, late = run(scenario())
    assert slow >= 0.19 and late >= 0.19
    assert [p["xmlId"] for p in app.state.emulator.store.products.values()] == ["s"]


def test_operation_time_limit_fault_reports_the_reset_time():
    app = new_app()

    async def scenario():
        async with admin(app) as adm, new_client(app) as client:
            await adm.post(
                "/_emulator/faults",
                json={"status": 429, "error": "OPERATION_TIME_LIMIT", "reset_in_s": 30},
            )
            with pytest.raises(Bitrix24Error) as caught:
                await client.call("catalog.product.get", {"id": 1})
            return caught.value

    err = run(scenario())
    assert type(err).__name__ == "OperationTimeLimit"
    assert 28 <= err.retry_after <= 31


def test_admin_endpoints_inspect_reset_and_limits():
    app = new_app()

    async def scenario():
        async with admin(app) as adm, new_client(app) as client:
            assert (await adm.get("/health")).json() == {"status": "ok"}
            await add_product(client, {"name": "A", "xmlId": "g"})
            products = (await adm.get("/_emulator/products")).json()
            await adm.post("/_emulator/faults", json={"times": 2})
            assert len((await adm.get("/_emulator/faults")).json()["faults"]) == 1
            assert (await adm.delete("/_emulator/faults")).json() == {"cleared": 1}
            r = await adm.put("/_emulator/limits", json={"rate_per_s": 0.01, "burst": 1})
            assert r.status_code == 200
            await client.call("catalog.product.get", {"id": products[0]["id"]})
            with pytest.raises(QueryLimitExceeded):
                await client.call("catalog.product.get", {"id": products[0]["id"]})
            calls = (
                await adm.get("/_emulator/calls", params={"method": "catalog.product.get"})
            ).json()
            await adm.post("/_emulator/reset")
            after = (await adm.get("/_emulator/products")).json()
            return products, calls, after

    products, calls, after = run(scenario())
    assert [p["xmlId"] for p in products] == ["g"]
    assert [c["status"] for c in calls] == [200, 503]
    assert after == [] and app.state.emulator.calls == []


def test_apps_do_not_share_state():
    one, two = new_app(), new_app()
    emulator_call(one, "catalog.product.add", json={"fields": {"iblockId": 14, "name": "A"}})
    assert len(one.state.emulator.store.products) == 1
    assert two.state.emulator.store.products == {}
