"""The status page of `mmctl run`: throughput, consumer lag per group and dead letters as
charts that refresh, for people who would rather look than read.

It scrapes the processes' own /metrics (the bridge and the workers that serve one) every
few seconds, keeps a short history in memory and serves it as ``/status.json``; ``/status``
is one self-contained HTML page (inline SVG drawn by a few lines of JavaScript: no CDN, the
machine may be offline). Lag comes from the workers' ``mm_consumer_lag`` (each worker
computes its own group's lag, right on both Kafka and the embedded broker), so the page
shows what Prometheus would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Route

from devstack.stack.flows import CourierProbe, flow_counts
from devstack.stack.status_page_html import HTML

# Counters shown as rates: series name -> (sample name, required labels, label naming the series).
_RATES: list[tuple[str, str, dict[str, str], str | None]] = [
    ("ingress accepted", "mm_ingress_records_total", {"outcome": "accepted"}, None),
    ("ingress rejected", "mm_ingress_records_total", {"outcome": "rejected"}, None),
    ("agent", "mm_agent_records_total", {}, "agent"),
    ("sink upserted", "mm_sink_records_total", {"outcome": "upserted"}, None),
    ("egress delivered", "mm_egress_deliveries_total", {"outcome": "delivered"}, None),
]


@dataclass
class Sample:
    """What one scrape of every endpoint gave."""

    t: float
    counters: dict[str, float] = field(default_factory=dict)  # rate series -> counter total
    lag: dict[str, float] = field(default_factory=dict)  # group -> records behind
    dlq: dict[tuple[str, str], float] = field(default_factory=dict)  # (stage, reason) -> count
    up: dict[str, bool] = field(default_factory=dict)  # endpoint -> answered
    flows: dict[str, float] = field(default_factory=dict)  # flow -> changes completed at the target


def summarize(
    families_by_url: dict[str, list | None], t: float, courier: dict[str, float] | None = None
) -> Sample:
    """One Sample from parsed metric families per endpoint (None: the endpoint did not answer)
    and the courier flows' counts (flows.CourierProbe)."""
    sample = Sample(t)
    partition_lag: dict[tuple[str, str, str], float] = {}
    for url, families in families_by_url.items():
        sample.up[url] = families is not None
        for family in families or []:
            for s in family.samples:
                if s.name == "mm_dlq_records_total":
                    key = (s.labels.get("stage", "?"), s.labels.get("reason", "?"))
                    sample.dlq[key] = sample.dlq.get(key, 0.0) + s.value
                elif s.name == "mm_consumer_lag":
                    # Every replica of a group reports every partition: max, never sum.
                    key = (s.labels["group"], s.labels["topic"], s.labels["partition"])
                    partition_lag[key] = max(partition_lag.get(key, 0.0), s.value)
                for series, name, labels, by in _RATES:
                    if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                        key = f"{series} {s.labels.get(by, '?')}" if by else series
                        sample.counters[key] = sample.counters.get(key, 0.0) + s.value
    for (group, _, _), lag in partition_lag.items():
        sample.lag[group] = sample.lag.get(group, 0.0) + lag
    sample.flows = flow_counts(
        (
            s
            for families in families_by_url.values()
            for family in families or []
            for s in family.samples
        ),
        courier,
    )
    return sample


def _rates(prev: Sample, cur: Sample) -> dict[str, float]:
    dt = max(cur.t - prev.t, 1e-6)
    # A counter that went down means its process restarted: count from zero again.
    return {
        k: max(0.0, v - prev.counters.get(k, 0.0) if v >= prev.counters.get(k, 0.0) else v) / dt
        for k, v in cur.counters.items()
    }


def _columns(rows: list[dict[str, float]]) -> dict[str, list[float | None]]:
    keys = sorted({k for row in rows for k in row})
    return {k: [row.get(k) for row in rows] for k in keys}


class StatusPage:
    """Samples the metrics endpoints and serves the page and its JSON."""

    def __init__(
        self,
        metrics_urls: list[str],
        *,
        interval_s: float = 2.0,
        history: int = 300,
        onec_emulator_url: str | None = None,
    ) -> None:
        self.metrics_urls = metrics_urls
        self.courier = CourierProbe(onec_emulator_url)
        self.interval_s = interval_s
        self.samples: deque[Sample] = deque(maxlen=history + 1)
        self._server: uvicorn.Server | None = None

    async def sample(self, client: httpx.AsyncClient | None = None) -> Sample:
        """Scrape every endpoint once and add the result to the history."""
        own = client is None
        client = client or httpx.AsyncClient(timeout=2.0)
        try:
            bodies = await asyncio.gather(*(self._scrape(client, url) for url in self.metrics_urls))
            courier = await self.courier.counts(client)
        finally:
            if own:
                await client.aclose()
        sample = summarize(dict(zip(self.metrics_urls, bodies, strict=True)), time.time(), courier)
        self.samples.append(sample)
        return sample

    @staticmethod
    async def _scrape(client: httpx.AsyncClient, url: str) -> list | None:
        try:
            response = await client.get(url)
            response.raise_for_status()
            return list(text_string_to_metric_families(response.text))
        except (httpx.HTTPError, ValueError):
            return None  # a process starting or gone: shown as down, not an error

    def snapshot(self) -> dict:
        """The JSON body of /status.json: current figures and the history behind the charts."""
        samples = list(self.samples)
        if not samples:
            return {
                "updated_at": None,
                "interval_s": self.interval_s,
                "sources": {},
                "throughput": {"t": [], "series": {}},
                "lag": {"t": [], "series": {}, "current": {}},
                "dlq": {"t": [], "series": {}, "total": 0, "by_reason": []},
                "totals": {},
                "flows": flow_counts([]),
            }
        last = samples[-1]
        pairs = list(zip(samples, samples[1:], strict=False))
        return {
            "updated_at": last.t,
            "interval_s": self.interval_s,
            "sources": last.up,
            "throughput": {
                "t": [cur.t for _, cur in pairs],
                "series": _columns([_rates(prev, cur) for prev, cur in pairs]),
            },
            "lag": {
                "t": [s.t for s in samples],
                "series": _columns([s.lag for s in samples]),
                "current": last.lag,
            },
            "dlq": {
                "t": [s.t for s in samples],
                "series": {"total": [sum(s.dlq.values()) for s in samples]},
                "total": sum(last.dlq.values()),
                "by_reason": [
                    {"stage": st, "reason": r, "count": n}
                    for (st, r), n in sorted(last.dlq.items(), key=lambda kv: -kv[1])
                ],
            },
            "totals": last.counters,
            "flows": last.flows,
        }

    def app(self) -> Starlette:
        """The ASGI app: ``/status`` (HTML), ``/status.json``; ``/`` redirects to the page."""

        async def page(request: Request) -> HTMLResponse:
            return HTMLResponse(HTML, headers={"Cache-Control": "no-store"})

        async def data(request: Request) -> JSONResponse:
            return JSONResponse(self.snapshot(), headers={"Cache-Control": "no-store"})

        async def root(request: Request) -> RedirectResponse:
            return RedirectResponse("/status")

        return Starlette(
            routes=[Route("/", root), Route("/status", page), Route("/status.json", data)]
        )

    async def run(self) -> None:
        """Sample forever, every ``interval_s``."""
        async with httpx.AsyncClient(timeout=min(2.0, self.interval_s)) as client:
            while True:
                await self.sample(client)
                await asyncio.sleep(self.interval_s)

    async def serve(self, host: str, port: int) -> None:
        """Serve the page and sample until cancelled (or :meth:`stop`)."""
        config = uvicorn.Config(
            self.app(), host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = _QuietServer(config)
        sampler = asyncio.create_task(self.run())
        try:
            await self._server.serve()
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    def stop(self) -> None:
        """Ask a running :meth:`serve` to return."""
        if self._server is not None:
            self._server.should_exit = True


class _QuietServer(uvicorn.Server):
    """Leaves signals alone: the process that embeds the page (the supervisor) owns Ctrl-C."""

    def capture_signals(self):  # type: ignore[override]
        return contextlib.nullcontext()
