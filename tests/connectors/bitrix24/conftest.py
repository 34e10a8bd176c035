"""Fixtures of the Bitrix24 connector tests: captured REST answers, and the emulator served
over real HTTP (uvicorn on a free loopback port, in a background thread)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from connectors.bitrix24.client import Bitrix24Client
from devstack.emulators.bitrix24 import create_app
from mmstream.serve import free_port
from mmstream.settings import Bitrix24Settings

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "bitrix24_rest"


@pytest.fixture
def rest_fixture() -> Callable[[str], Any]:
    """Loads a captured Bitrix24 REST answer by file name."""

    def load(name: str) -> Any:
        return json.loads((FIXTURES / name).read_text(encoding="utf-8"))

    return load


@contextmanager
def serve_emulator(**options: Any) -> Iterator[tuple[str, Any]]:
    """(base URL, app) of an emulator served by uvicorn until the block ends."""
    app = create_app(**options)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="bitrix24-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "emulator thread died while starting"
        assert time.monotonic() < deadline, "emulator did not start in 15 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def emulator() -> Iterator[tuple[str, Any]]:
    """A generously limited emulated portal over real HTTP: (base URL, app)."""
    with serve_emulator(webhook_path="/rest/1/testhook/", rate_per_s=1000.0, burst=1000) as served:
        yield served


def run_in_process(app: Any, hook: str, scenario, base: str = "http://portal.test") -> Any:
    """Run ``scenario(client, admin)`` against the emulator app in this process (ASGI, no
    socket): the real Bitrix24 client with a generous budget, and an admin HTTP client."""

    async def main():
        client = Bitrix24Client(
            Bitrix24Settings(webhook_url=base + hook, rate_per_s=1e6, burst=1000),
            transport=httpx.ASGITransport(app=app),
        )
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
        try:
            return await scenario(client, admin)
        finally:
            await client.aclose()
            await admin.aclose()

    return asyncio.run(main())


async def raw_call(
    admin: httpx.AsyncClient, hook: str, method: str, params: dict[str, Any]
) -> tuple[int, Any]:
    """(status, body) of a REST call to the emulator, without the client's error mapping."""
    resp = await admin.post(f"{hook}{method}.json", json=params)
    return resp.status_code, resp.json()
