"""Writes through 1С's standard OData interface: the emulator answers them as 1С does
(POST creates -> 201 and the record, PATCH -> 200 and the record, /Post -> 200, errors as
``odata.error`` with a code and ``message.value``), and the egress client reads those
answers into records or the right error classes."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from urllib.parse import unquote

import httpx
import pytest

from connectors.onec.errors import ODataPeriodClosed
from connectors.onec.odata.errors import ODataBadRequest, ODataServerError
from connectors.onec.odata_write import ODataDocumentMissing
from devstack.emulators.onec.app import create_app
from tests.connectors.onec.test_client import make_client

ODATA = "/trade/odata/standard.odata"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"integration:pw").decode()}
ORDERS = "Document_ЗаказКлиента"
PRODUCT = "6ca8e4a2-5f3c-11ee-8c99-0242ac120002"


def run(app, script):
    async def main():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://1c.test"
        ) as http:
            return await script(http)

    return asyncio.run(main())


def order(ref: str, date: str = "2026-12-06T10:00:00") -> dict:
    return {
        "Ref_Key": ref,
        "Date": date,
        "Контрагент_Key": str(uuid.uuid4()),
        "СуммаДокумента": 700,
        "Товары": [
            {
                "LineNumber": "1",
                "Номенклатура_Key": PRODUCT,
                "Количество": 2,
                "Цена": 350,
                "Сумма": 700,
            }
        ],
    }


def odata_error(response: httpx.Response) -> tuple[str, str]:
    err = response.json()["odata.error"]
    return err["code"], err["message"]["value"]


def test_create_patch_and_post_answer_as_1c_does():
    app = create_app(service_username="integration", service_password="pw")
    ref = str(uuid.uuid4())

    async def script(http):
        created = await http.post(
            f"{ODATA}/{ORDERS}?$format=json", json={**order(ref), "Posted": True}, headers=AUTH
        )
        again = await http.post(f"{ODATA}/{ORDERS}?$format=json", json=order(ref), headers=AUTH)
        read = await http.get(f"{ODATA}/{ORDERS}(guid'{ref}')?$format=json", headers=AUTH)
        patched = await http.patch(
            f"{ODATA}/{ORDERS}(guid'{ref}')?$format=json",
            json={"Комментарий": "доставлен"},
            headers=AUTH,
        )
        posted = await http.post(
            f"{ODATA}/{ORDERS}(guid'{ref}')/Post?PostingModeOperational=false", headers=AUTH
        )
        missing = await http.patch(
            f"{ODATA}/{ORDERS}(guid'{uuid.uuid4()}')?$format=json",
            json={"Комментарий": "x"},
            headers=AUTH,
        )
        unauthorized = await http.post(
            f"{ODATA}/{ORDERS}?$format=json", json=order(str(uuid.uuid4()))
        )
        return created, again, read, patched, posted, missing, unauthorized

    created, again, read, patched, posted, missing, unauthorized = run(app, script)
    assert created.status_code == 201
    body = created.json()
    assert body["odata.metadata"].endswith(f"$metadata#{ORDERS}/@Element")
    assert unquote(created.headers["location"]).endswith(f"{ORDERS}(guid'{ref}')")
    # 1С gives the object the Ref_Key asked for, numbers it, and writes it unposted.
    assert body["Ref_Key"] == ref and body["Number"].startswith("ММ00-") and body["Posted"] is False
    assert body["DataVersion"] and body["Товары"][0]["Номенклатура_Key"] == PRODUCT
    # A second object with the same Ref_Key is refused; nothing is written.
    assert again.status_code == 500 and odata_error(again)[0] == "-1"
    assert "существует" in odata_error(again)[1]
    assert read.json()["Number"] == body["Number"]
    assert patched.status_code == 200 and patched.json()["Комментарий"] == "доставлен"
    assert patched.json()["DataVersion"] != body["DataVersion"]  # a write: a new version
    assert posted.status_code == 200
    assert app.state.base.sets[ORDERS][ref]["Posted"] is True
    assert missing.status_code == 404 and odata_error(missing)[0] == "9"
    assert unauthorized.status_code == 401
    assert [c["operation"] for c in app.state.calls.list()] == [
        "odata_create",
        "odata_create",
        "odata_get",
        "odata_patch",
        "odata_post",
        "odata_patch",
        "odata_create",
    ]


def test_a_closed_period_refuses_creating_changing_and_posting():
    app = create_app()
    ref = str(uuid.uuid4())

    async def script(http):
        assert (
            await http.post(f"{ODATA}/{ORDERS}?$format=json", json=order(ref))
        ).status_code == 201
        await http.put("/_emulator/rules", json={"closed_before": "2027-01-01T00:00:00"})
        create = await http.post(f"{ODATA}/{ORDERS}?$format=json", json=order(str(uuid.uuid4())))
        patch = await http.patch(
            f"{ODATA}/{ORDERS}(guid'{ref}')?$format=json", json={"Комментарий": "x"}
        )
        post = await http.post(f"{ODATA}/{ORDERS}(guid'{ref}')/Post?PostingModeOperational=false")
        bad = await http.post(f"{ODATA}/{ORDERS}?$format=json", json=[1])
        return create, patch, post, bad

    create, patch, post, bad = run(app, script)
    for response in (create, patch, post):
        assert response.status_code == 500
        code, message = odata_error(response)
        assert code == "-1" and "Дата запрета изменения" in message
    assert bad.status_code == 400
    assert len(app.state.base.sets[ORDERS]) == 1  # the refused create wrote nothing
    assert app.state.base.sets[ORDERS][ref].get("Комментарий") is None


def test_an_after_write_fault_loses_the_answer_of_a_write_that_happened():
    app = create_app()
    ref = str(uuid.uuid4())

    async def script(http):
        await http.post(
            "/_emulator/faults",
            json={
                "target": "odata",
                "operation": "odata_create",
                "after_write": True,
                "status": 502,
            },
        )
        lost = await http.post(f"{ODATA}/{ORDERS}?$format=json", json=order(ref))
        found = await http.get(f"{ODATA}/{ORDERS}(guid'{ref}')?$format=json")
        return lost, found

    lost, found = run(app, script)
    assert lost.status_code == 502 and found.status_code == 200
    assert app.state.calls.list(operation="odata_create")[0]["fault"] is True


def test_the_client_creates_reads_changes_and_classifies_refusals(onec_service):
    url, app = onec_service
    ref = str(uuid.uuid4())

    async def main():
        async with make_client(url) as onec:
            absent = await onec.get_document(ORDERS, ref)
            created = await onec.create_document(ORDERS, order(ref))
            read = await onec.get_document(ORDERS, ref)
            with pytest.raises(ODataServerError) as duplicate:
                await onec.create_document(ORDERS, order(ref))
            changed = await onec.update_document(ORDERS, ref, {"Комментарий": "доставлен"})
            with pytest.raises(ODataDocumentMissing) as missing:
                await onec.update_document(ORDERS, uuid.uuid4(), {"Комментарий": "x"})
            with pytest.raises(ODataBadRequest):
                await onec.create_document(ORDERS, {**order(str(uuid.uuid4())), "Date": "вчера"})
            admin_rules = httpx.put(
                f"{url}/_emulator/rules", json={"closed_before": "2027-01-01T00:00:00"}
            )
            assert admin_rules.status_code == 200
            with pytest.raises(ODataPeriodClosed) as closed:
                await onec.update_document(ORDERS, ref, {"Комментарий": "поздно"})
            return absent, created, read, duplicate.value, changed, missing.value, closed.value

    absent, created, read, duplicate, changed, missing, closed = asyncio.run(main())
    assert absent is None
    assert created["Ref_Key"] == ref and "odata.metadata" not in created
    assert read["Number"] == created["Number"]
    assert changed["Комментарий"] == "доставлен"
    assert not missing.retriable and not closed.retriable
    assert "Не найден объект" in str(missing) and missing.code == "onec_odata_document_missing"
    assert duplicate.status == 500


def test_look_before_create_survives_a_lost_answer_a_race_and_a_refused_posting(onec_service):
    """stages/egress/onec_odata.ensure_document over real HTTP: a create whose answer times
    out is found, not repeated; a second call neither creates nor posts; a posting 1С
    refuses leaves the document, and the replay only posts it."""
    from stages.egress.onec_odata import ensure_document

    url, app = onec_service
    lost, raced, refused = (str(uuid.uuid4()) for _ in range(3))

    async def main():
        async with make_client(url, timeout_s=0.5) as onec:
            # The answer comes after the client gave up: the document exists all the same.
            httpx.post(
                f"{url}/_emulator/faults",
                json={
                    "target": "odata",
                    "operation": "odata_create",
                    "after_write": True,
                    "delay_s": 1.5,
                },
            )
            first = await ensure_document(onec, ORDERS, order(lost), post=True)
            again = await ensure_document(onec, ORDERS, order(lost), post=True)
            # Another worker created it between our look and our create: 1С refuses ours.
            app.state.base.write(ORDERS, {**order(raced), "Number": "ММ00-777777", "Posted": False})
            real_get = onec.get_document
            calls = []

            async def blind_first_look(entity_set, ref):
                calls.append(ref)
                return None if len(calls) == 1 else await real_get(entity_set, ref)

            onec.get_document = blind_first_look  # the look that ran before the other worker
            won = await ensure_document(onec, ORDERS, order(raced), post=False)
            onec.get_document = real_get
            # A closed period refuses the posting; the replay after it opens only posts.
            httpx.put(f"{url}/_emulator/rules", json={"closed_before": "2027-01-01T00:00:00"})
            app.state.base.write(
                ORDERS, {**order(refused), "Number": "ММ00-888888", "Posted": False}
            )
            with pytest.raises(ODataPeriodClosed):
                await ensure_document(onec, ORDERS, order(refused), post=True)
            httpx.put(f"{url}/_emulator/rules", json={"closed_before": None})
            replayed = await ensure_document(onec, ORDERS, order(refused), post=True)
            return first, again, won, replayed

    first, again, won, replayed = asyncio.run(main())
    assert first[0]["Ref_Key"] == lost and first[0]["Posted"] is True and first[1] is True
    assert again[0]["Number"] == first[0]["Number"] and again[1] is True
    assert won[0]["Number"] == "ММ00-777777" and won[1] is True
    assert replayed[0]["Posted"] is True and replayed[1] is True
    # The lost create is logged once its held answer is let go.
    deadline = time.monotonic() + 10
    while not [c for c in app.state.calls.list(operation="odata_create") if c["fault"]]:
        assert time.monotonic() < deadline, "the lost create was never logged"
        time.sleep(0.05)
    creates = app.state.calls.list(operation="odata_create")
    assert len(creates) == 2  # the lost one and the raced one; never a repeat
    assert len(app.state.base.sets[ORDERS]) == 3
    posts = [c for c in app.state.calls.list(operation="odata_post")]
    assert [lost in c["path"] for c in posts].count(True) == 1  # posted once, not on the repeat
    assert [c["status"] for c in posts if refused in c["path"]] == [500, 200]


def test_a_delivery_outcome_is_patched_once_and_a_missing_order_is_permanent(onec_service):
    from mmstream.settings import ODataWriteSettings
    from stages.egress.onec_odata import confirm_delivery

    url, app = onec_service
    ref, task = str(uuid.uuid4()), str(uuid.uuid4())
    app.state.base.write(ORDERS, {**order(ref), "Number": "УТ-000777", "Комментарий": ""})
    cfg = ODataWriteSettings(
        delivery_status_field="Статус", delivery_status_values={"delivered": "Закрыт"}
    )

    async def main():
        async with make_client(url) as onec:
            first = await confirm_delivery(onec, cfg, {"order_id": ref}, task, "delivered")
            again = await confirm_delivery(onec, cfg, {"order_id": ref}, task, "delivered")
            with pytest.raises(ODataDocumentMissing) as missing:
                await confirm_delivery(onec, cfg, {"order_id": str(uuid.uuid4())}, task, "failed")
            return first, again, missing.value

    first, again, missing = asyncio.run(main())
    assert first == again == ref
    held = app.state.base.sets[ORDERS][ref]
    assert held["Комментарий"] == f"[MM доставка] {task}: delivered" and held["Статус"] == "Закрыт"
    assert [c["status"] for c in app.state.calls.list(operation="odata_patch")] == [200, 404]
    assert not missing.retriable
