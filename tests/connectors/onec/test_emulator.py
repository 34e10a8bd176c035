"""The 1С emulator's switches: fault selection and counting, the call log, the base's rules,
the OData /Post and /Unpost actions, and answers off the service's routes."""

from __future__ import annotations

import asyncio
import base64
import uuid

import httpx

from devstack.emulators.onec.app import create_app

SERVICE = "/trade/hs/mm"
ODATA = "/trade/odata/standard.odata"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"integration:pw").decode()}
CASH = {
    "source_id": "c",
    "kind": "cash_receipt",
    "date": "2024-05-01T09:00:00",
    "amount": 10,
    "post": False,
}


def run(app, script):
    async def main():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://1c.test"
        ) as http:
            return await script(http)

    return asyncio.run(main())


def service_app():
    return create_app(service_username="integration", service_password="pw")


def test_faults_pick_their_interface_and_operation_and_count_down():
    app = service_app()

    async def script(http):
        await http.post(
            "/_emulator/faults", json={"target": "hs", "operation": "return", "status": 500}
        )
        await http.post(
            "/_emulator/faults",
            json={
                "target": "hs",
                "operation": "cash_document",
                "status": 503,
                "after": 1,
                "count": 2,
            },
        )
        await http.post("/_emulator/faults", json={"target": "odata", "status": 502, "count": -1})
        listed = (await http.get("/_emulator/faults")).json()["faults"]
        statuses = []
        for n in range(4):
            r = await http.post(
                f"{SERVICE}/cash-documents",
                json={**CASH, "source_id": f"c{n}"},
                headers={**AUTH, "Idempotency-Key": f"k{n}"},
            )
            statuses.append((r.status_code, r.headers.get("retry-after")))
        reads = [
            (await http.get(f"{ODATA}/Catalog_Склады?$format=json", headers=AUTH)).status_code
            for _ in range(2)
        ]
        left = (await http.get("/_emulator/faults")).json()["faults"]
        cleared = (await http.delete("/_emulator/faults")).json()["cleared"]
        return listed, statuses, reads, left, cleared

    listed, statuses, reads, left, cleared = run(app, script)
    assert len(listed) == 3
    # The return fault is not for cash documents; the cash one lets one pass, then hits two.
    assert statuses == [(201, None), (503, "1"), (503, "1"), (201, None)]
    assert reads == [502, 502]  # count -1: every matching request
    assert [f["operation"] for f in left] == ["return", "*"] and cleared == 2
    log = app.state.calls.list()
    assert [c["status"] for c in app.state.calls.list(operation="cash_document")] == [
        201,
        503,
        503,
        201,
    ]
    assert {c["interface"] for c in log} == {"hs", "odata"}
    assert all(c["fault"] for c in log if c["status"] >= 500)


def test_odata_post_and_unpost_change_posted_and_the_data_version():
    app = service_app()

    async def script(http):
        made = (
            await http.post(
                f"{SERVICE}/cash-documents", json=CASH, headers={**AUTH, "Idempotency-Key": "k1"}
            )
        ).json()["document"]
        address = f"{ODATA}/{made['type']}(guid'{made['ref_key']}')"
        before = dict(app.state.base.sets[made["type"]][made["ref_key"]])
        posted = await http.post(f"{address}/Post?PostingModeOperational=false", headers=AUTH)
        after_post = dict(app.state.base.sets[made["type"]][made["ref_key"]])
        unposted = await http.post(f"{address}/Unpost", headers=AUTH)
        after_unpost = app.state.base.sets[made["type"]][made["ref_key"]]
        bad_mode = await http.post(f"{address}/Post?PostingModeOperational=maybe", headers=AUTH)
        unknown = await http.post(
            f"{ODATA}/{made['type']}(guid'{uuid.uuid4()}')/Post", headers=AUTH
        )
        no_auth = await http.post(f"{address}/Post")
        view = (await http.get(f"{ODATA}/{made['type']}?$format=json", headers=AUTH)).json()[
            "value"
        ]
        return before, posted, after_post, unposted, after_unpost, bad_mode, unknown, no_auth, view

    before, posted, after_post, unposted, after_unpost, bad_mode, unknown, no_auth, view = run(
        app, script
    )
    assert (posted.status_code, unposted.status_code) == (200, 200)
    assert (before["Posted"], after_post["Posted"], after_unpost["Posted"]) == (False, True, False)
    assert len({before["DataVersion"], after_post["DataVersion"], after_unpost["DataVersion"]}) == 3
    assert bad_mode.status_code == 400 and unknown.status_code == 404 and no_auth.status_code == 401
    assert "odata.error" in unknown.json()
    assert [r["Ref_Key"] for r in view] == [
        before["Ref_Key"]
    ]  # the OData reader sees the new document


def test_rules_delivery_on_a_known_order_and_off_route_answers():
    app = service_app()
    order_ref = str(uuid.uuid4())
    app.state.base.load(
        "Document_ЗаказКлиента",
        {
            "Ref_Key": order_ref,
            "Number": "ТД00-000042",
            "Date": "2024-05-01T08:00:00",
            "Posted": True,
            "DataVersion": "AAAAAQAAAAA=",
        },
    )

    async def script(http):
        rules = (
            await http.put("/_emulator/rules", json={"closed_before": "2024-04-01T00:00:00"})
        ).json()
        confirmed = await http.post(
            f"{SERVICE}/delivery-tasks/{uuid.uuid4()}/status",
            headers={**AUTH, "Idempotency-Key": "d1"},
            json={
                "status": "delivered",
                "order_id": order_ref.upper(),
                "occurred_at": "2024-05-01T12:00:00",
            },
        )
        nowhere = await http.get(f"{SERVICE}/no-such-thing", headers=AUTH)
        bad_task = await http.post(
            f"{SERVICE}/delivery-tasks/not-a-guid/status",
            headers={**AUTH, "Idempotency-Key": "d2"},
            json={},
        )
        reset = await http.post("/_emulator/reset")
        after_reset = await http.get(f"{SERVICE}/operations/d1", headers=AUTH)
        return rules, confirmed, nowhere, bad_task, reset, after_reset

    rules, confirmed, nowhere, bad_task, reset, after_reset = run(app, script)
    assert rules["closed_before"].startswith("2024-04-01") and rules["strict_references"] is False
    assert confirmed.status_code == 201
    document = confirmed.json()["document"]
    assert document == {
        "type": "Document_ЗаказКлиента",
        "ref_key": order_ref,
        "number": "ТД00-000042",
        "date": "2024-05-01T08:00:00",
        "posted": True,
    }
    record = app.state.base.sets["Document_ЗаказКлиента"][order_ref]
    assert record["мм_СтатусДоставки"] == "delivered" and record["DataVersion"] != "AAAAAQAAAAA="
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    assert bad_task.status_code == 400 and bad_task.json()["error"]["code"] == "validation_failed"
    assert reset.status_code == 200 and after_reset.status_code == 404
