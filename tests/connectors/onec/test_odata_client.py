"""The OData client against the 1С emulator (in process, through httpx.ASGITransport), the
emulator's query options and admin endpoints, and the error mapping."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from connectors.onec.odata.client import ODataClient
from connectors.onec.odata.errors import (
    ODataAuthFailed,
    ODataBadRequest,
    ODataNotPublished,
    ODataServerError,
    ODataTransportError,
    error_from_response,
)
from connectors.onec.odata.query import entity_set_path, key_filter, query_string
from devstack.emulators.onec.app import create_app
from mmstream.errors import ConfigurationError
from mmstream.serve import free_port
from mmstream.settings import ODataSettings
from tests.support.stack import FIXTURES

BASE = "http://1c.test/trade/odata/standard.odata/"
SHIPMENTS = "Document_РеализацияТоваровУслуг"
PRICES = "InformationRegister_ЦеныНоменклатуры"


def run(coro):
    return asyncio.run(coro)


def emulator(**kwargs):
    kwargs.setdefault("username", "odata")
    kwargs.setdefault("password", "secret")
    return create_app(
        FIXTURES / "onec_odata" / "bp30_Document_RealizatsiyaTovarovUslug.json", **kwargs
    )


def client(app, **settings) -> ODataClient:
    settings = {"base_url": BASE, "username": "odata", "password": "secret", **settings}
    return ODataClient(ODataSettings(**settings), transport=httpx.ASGITransport(app=app))


def admin(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://1c.test")


def test_reads_the_captured_documents_in_pages():
    async def main():
        async with client(emulator()) as odata:
            pages = [
                await odata.query(SHIPMENTS, orderby="Ref_Key", top=1, skip=skip)
                for skip in (0, 1, 2)
            ]
            return pages, await odata.query(SHIPMENTS)

    pages, everything = run(main())
    assert [len(p) for p in pages] == [1, 1, 0]
    assert [p[0]["Ref_Key"] for p in pages[:2]] == sorted(r["Ref_Key"] for r in everything)
    assert everything[0]["Товары"][0]["LineNumber"] == "1"


def test_filters_and_ordering():
    async def main():
        app = emulator()
        async with admin(app) as adm, client(app) as odata:
            for n, period in enumerate(
                ["2024-01-01T00:00:00", "2024-02-01T00:00:00", "2024-03-01T00:00:00"]
            ):
                await adm.put(
                    f"/_emulator/odata/{PRICES}",
                    json={
                        "Period": period,
                        "Номенклатура_Key": product,
                        "ВидЦены_Key": price_type,
                        "Цена": 100 + n,
                        "Комментарий": "it's",
                    },
                )
            by_key = await odata.query(
                PRICES,
                filter=key_filter(
                    {
                        "Номенклатура_Key": product.upper(),
                        "ВидЦены_Key": price_type,
                        "Period": "2024-02-01T00:00:00",
                    }
                ),
            )
            newer = await odata.query(
                PRICES,
                filter="Period gt datetime'2024-01-01T00:00:00' and not (Цена eq 102)",
                orderby="Period desc",
            )
            quoted = await odata.query(PRICES, filter="Комментарий eq 'it''s' or Цена lt 0")
            return by_key, newer, quoted

    product, price_type = str(uuid.uuid4()), str(uuid.uuid4())
    by_key, newer, quoted = run(main())
    assert [r["Цена"] for r in by_key] == [101]
    assert [r["Цена"] for r in newer] == [101]
    assert len(quoted) == 3
    assert all("DataVersion" not in r for r in quoted)  # registers have none in 1С


def test_writes_get_a_new_data_version_and_deletions_vanish():
    async def main():
        app = emulator()
        async with admin(app) as adm, client(app) as odata:
            (before,) = await odata.query(SHIPMENTS, orderby="Ref_Key", top=1)
            written = (
                await adm.put(f"/_emulator/odata/{SHIPMENTS}", json={**before, "Комментарий": "x"})
            ).json()
            (after,) = await odata.query(
                SHIPMENTS, filter=key_filter({"Ref_Key": before["Ref_Key"]})
            )
            deleted = await adm.request(
                "DELETE", f"/_emulator/odata/{SHIPMENTS}", json={"Ref_Key": before["Ref_Key"]}
            )
            again = await adm.request(
                "DELETE", f"/_emulator/odata/{SHIPMENTS}", json={"Ref_Key": before["Ref_Key"]}
            )
            return (
                before,
                written,
                after,
                deleted.status_code,
                again.status_code,
                await odata.query(SHIPMENTS),
            )

    before, written, after, deleted, again, rest = run(main())
    assert written["DataVersion"] != before["DataVersion"] and after == written
    assert (deleted, again) == (200, 404)
    assert before["Ref_Key"] not in [r["Ref_Key"] for r in rest] and len(rest) == 1


def test_basic_auth():
    app = emulator()
    with pytest.raises(ODataAuthFailed) as wrong:
        run(client(app, password="wrong").query(SHIPMENTS))
    with pytest.raises(ODataAuthFailed):
        run(client(app, username="").query(SHIPMENTS))
    assert wrong.value.status == 401 and wrong.value.alert and not wrong.value.retriable
    assert "secret" not in str(wrong.value)


def test_unpublished_entity_set_and_bad_query():
    app = emulator(entity_sets=[SHIPMENTS])
    with pytest.raises(ODataNotPublished) as missing:
        run(client(app).query("Catalog_Номенклатура"))
    assert missing.value.odata_code == "9" and "Catalog_Номенклатура" in str(missing.value)
    with pytest.raises(ODataBadRequest) as bad:
        run(client(app).query(SHIPMENTS, filter="Posted eq"))
    assert not bad.value.retriable


def test_server_faults_are_retriable():
    async def main():
        app = emulator()
        async with admin(app) as adm:
            await adm.post("/_emulator/faults", json={"status": 503, "after": 1})
        odata = client(app)
        first = await odata.query(SHIPMENTS)
        with pytest.raises(ODataServerError) as failed:
            await odata.query(SHIPMENTS)
        return first, failed.value, await odata.query(SHIPMENTS)

    first, failed, recovered = run(main())
    assert len(first) == len(recovered) == 2
    assert failed.retriable and failed.status == 503


def test_no_answer_is_a_retriable_transport_error():
    settings = ODataSettings(base_url=f"http://127.0.0.1:{free_port()}/odata/", timeout_s=5)
    with pytest.raises(ODataTransportError) as info:
        run(ODataClient(settings).query(SHIPMENTS))
    assert info.value.retriable and info.value.status is None


def test_error_mapping_of_odd_answers():
    proxy_page = error_from_response(502, "<html>Bad gateway</html>", entity_set=SHIPMENTS)
    assert isinstance(proxy_page, ODataServerError) and "Bad gateway" in str(proxy_page)
    body = {
        "odata.error": {"code": "14", "message": {"lang": "ru", "value": "Неправильный запрос"}}
    }
    assert isinstance(error_from_response(400, body), ODataBadRequest)
    assert isinstance(error_from_response(403, body), ODataAuthFailed)
    assert len(str(error_from_response(500, "x" * 5000))) < 600


def test_query_syntax():
    assert (
        entity_set_path("Catalog_Номенклатура")
        == "Catalog_%D0%9D%D0%BE%D0%BC%D0%B5%D0%BD%D0%BA%D0%BB%D0%B0%D1%82%D1%83%D1%80%D0%B0"
    )
    for bad in ("../admin", "Catalog_X?$top=1", "Catalog X", ""):
        with pytest.raises(ValueError):
            entity_set_path(bad)
    with pytest.raises(ConfigurationError):
        run(client(emulator()).query("../x"))
    assert (
        query_string(format="json", top=None, filter="A eq 'x&y'")
        == "$format=json&$filter=A%20eq%20%27x%26y%27"
    )
    assert key_filter({"Ref_Key": "a", "Period": "2024-01-01T00:00:00", "Code": "O'K"}) == (
        "Ref_Key eq guid'a' and Period eq datetime'2024-01-01T00:00:00' and Code eq 'O''K'"
    )


def test_default_emulator_serves_every_object_without_auth_and_the_http_service():
    async def main():
        app = create_app()
        async with admin(app) as http:
            sets = [
                (await http.get(f"/trade/odata/standard.odata/{name}?$format=json")).status_code
                for name in ("Catalog_Номенклатура", "Document_ЗаказКлиента", PRICES)
            ]
            no_format = await http.get("/trade/odata/standard.odata/Catalog_Склады")
            put = [
                await http.put(
                    "/trade/hs/mm/documents/42", json={"n": n}, headers={"Idempotency-Key": "k1"}
                )
                for n in (1, 2)
            ]
            return sets, no_format, put

    sets, no_format, (first, again) = run(main())
    assert sets == [200, 200, 200]
    assert no_format.status_code == 400 and "odata.error" in no_format.json()
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() and first.json()["body"] == {"n": 1}
