"""OData poller fixtures: the 1С emulator in process, the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from pydantic import SecretStr

from connectors.onec.odata.client import ODataClient
from connectors.onec.odata.poller import ODataPoller, ScanReport
from devstack.emulators.onec.app import create_app
from mmstream.db.engine import async_engine
from mmstream.kafka.admin import apply
from mmstream.kafka.producer import AckedProducer
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from tests.support.stack import FIXTURES

BASE = "http://1c.test/trade/odata/standard.odata/"
PRODUCTS = "Catalog_Номенклатура"


def product(name: str, **fields) -> dict:
    """A Номенклатура record as 1С holds it (the emulator assigns the DataVersion)."""
    doc = json.loads(
        (FIXTURES / "onec_odata" / "bp30_Catalog_Nomenklatura.json").read_text("utf-8")
    )["value"][0]
    doc = {**doc, "Ref_Key": str(uuid.uuid4()), "Description": name, "НаименованиеПолное": name}
    doc.pop("DataVersion")
    return {**doc, **fields}


class OData:
    """A 1С base (the emulator) and pollers against it, driven synchronously by a test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(
            FIXTURES / "onec_odata" / "bp30_Catalog_Nomenklatura.json",
            username="odata",
            password="secret",
        )

    def records(self, entity_set: str = PRODUCTS) -> dict[str, dict]:
        """The base's records by key, as the emulator holds them."""
        return dict(self.app.state.base.sets[entity_set])

    def _admin(self, method: str, path: str, body) -> httpx.Response:
        async def call():
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://1c.test"
            ) as c:
                return await c.request(method, path, json=body)

        resp = asyncio.run(call())
        assert resp.status_code < 300, resp.text
        return resp

    def write(self, entity_set: str, *records: dict) -> list[dict]:
        return self._admin("PUT", f"/_emulator/odata/{entity_set}", list(records)).json()

    def delete(self, entity_set: str, ident: dict) -> None:
        self._admin("DELETE", f"/_emulator/odata/{entity_set}", ident)

    def fault(self, **fault) -> None:
        self._admin("POST", "/_emulator/faults", fault)

    def scan(self, entity_set: str = PRODUCTS, **kwargs) -> ScanReport:
        return asyncio.run(self.scan_many([entity_set], **kwargs))[0]

    async def scan_many(self, entity_sets: list[str], **kwargs) -> list[ScanReport]:
        """One poller per entry (own engine, producer and client, as separate processes
        would have), all scanning at once."""
        pollers, closers = [], []
        for _ in entity_sets:
            producer = AckedProducer(self.settings.kafka, client_id="test-odata")
            engine = async_engine(self.settings)
            client = ODataClient(self.settings.odata, transport=httpx.ASGITransport(app=self.app))
            pollers.append(ODataPoller(self.settings, client, producer, engine))
            closers.append((producer, engine, client))
        try:
            return list(
                await asyncio.gather(
                    *(p.scan(s, **kwargs) for p, s in zip(pollers, entity_sets, strict=True))
                )
            )
        finally:
            for producer, engine, client in closers:
                await client.aclose()
                await engine.dispose()
                producer.close()


@pytest.fixture
def odata(settings) -> OData:
    apply(settings, load_catalog(settings.topics_file))
    settings = settings.model_copy(
        update={
            "odata": settings.odata.model_copy(
                update={
                    "base_url": BASE,
                    "username": "odata",
                    "password": SecretStr("secret"),
                    "page_size": 2,
                }
            )
        }
    )
    return OData(settings)


SERVICE_USER, SERVICE_PASSWORD = "integration", "s3cret-1c"


@pytest.fixture
def onec_service():
    """(base URL of the HTTP service, app) of a 1С emulator served over real HTTP (uvicorn
    on a free loopback port, in a background thread), with the integration user."""
    import threading
    import time

    import uvicorn

    from mmstream.serve import free_port

    app = create_app(service_username=SERVICE_USER, service_password=SERVICE_PASSWORD)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="onec-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the 1С emulator did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(15)
