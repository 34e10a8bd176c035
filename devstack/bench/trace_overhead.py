"""How much the trace costs an outbound call, and how fast the purge deletes.

``measure(engine, calls)`` times ``calls`` sequential requests through an in-process
transport (no network: the overhead is what is left) three ways — bare, with the trace
headers only, with headers and the integration log — then how long the writer needs to
catch up, and ``purge_rate(engine, settings, rows)`` times the retention purge of ``rows``
expired integration-log rows. Used by tests/devstack/bench/test_trace_overhead.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream import log as logctx
from mmstream.settings import Settings
from mmstream.trace import journal as journals
from mmstream.trace.transport import TracingTransport


@dataclass(frozen=True)
class Overhead:
    calls: int
    bare_us: float
    headers_us: float
    logged_us: float
    drain_s: float
    written: int


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"result": {"id": 1}, "time": {"duration": 0.01}})


async def _time(client: httpx.AsyncClient, calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        with logctx.bind(event_id=f"event-{i}", request_id=f"request-{i}"):
            await client.post(
                "http://portal.test/rest/1/code/crm.deal.add.json",
                json={"fields": {"TITLE": f"deal {i}"}},
            )
    return (time.perf_counter() - started) / calls * 1e6


async def measure(engine: AsyncEngine, calls: int, *, capacity: int = 100_000) -> Overhead:
    journal = journals.Journal(engine, capacity=capacity, batch=500)
    clients = {
        "bare": httpx.AsyncClient(transport=httpx.MockTransport(_answer)),
        "headers": httpx.AsyncClient(
            transport=TracingTransport(httpx.MockTransport(_answer), "bench", journal=None)
        ),
        "logged": httpx.AsyncClient(
            transport=TracingTransport(httpx.MockTransport(_answer), "bench", journal=journal)
        ),
    }
    try:
        for client in clients.values():  # warm up
            await _time(client, 50)
        await journal.flush()
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM integration_log WHERE target = 'bench'"))
        took = {name: await _time(client, calls) for name, client in clients.items()}
        started = time.perf_counter()
        await journal.flush()
        drain = time.perf_counter() - started
        async with engine.connect() as conn:
            written = (
                await conn.execute(
                    text("SELECT count(*) FROM integration_log WHERE target = 'bench'")
                )
            ).scalar()
    finally:
        for client in clients.values():
            await client.aclose()
        await journal.aclose()
    return Overhead(calls, took["bare"], took["headers"], took["logged"], drain, int(written or 0))


async def purge_rate(engine: AsyncEngine, settings: Settings, rows: int) -> tuple[int, float]:
    """(rows deleted, seconds) for ``rows`` expired integration-log rows."""
    from connectors.ingress.purge import purge_once

    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO integration_log (at, target, operation, http_method, url, request, response, latency_ms) "
                "SELECT now() - make_interval(days => :d + 1), 'bench', 'crm.deal.add', 'POST', "
                "'http://portal.test/rest/1/***/crm.deal.add.json', repeat('x', 300), repeat('y', 300), 12.5 "
                "FROM generate_series(1, :n)"
            ),
            {"d": settings.retention.integration_log_days, "n": rows},
        )
    started = time.perf_counter()
    done = await purge_once(engine, settings, budget_s=600)
    return done.integration_log, time.perf_counter() - started
