"""The live status line of `mmctl run`, built from the processes' own /metrics."""

from __future__ import annotations

import asyncio
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack.console import say
from devstack.stack.flows import CourierProbe, flow_counts, flows_text
from mmstream.kafka.lag import LagProbe
from mmstream.settings import Settings
from mmstream.topics import load_catalog


def _sum(families: dict, name: str, **labels: str) -> float:
    total = 0.0
    for sample in families.get(name, []):
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            total += sample.value
    return total


class StatusBoard:
    """Scrapes the bridge and worker metrics and prints one line a second."""

    def __init__(
        self,
        settings: Settings,
        bridge_url: str,
        worker_metrics: list[str],
        onec_emulator_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.courier = CourierProbe(onec_emulator_url)
        self.urls = [f"{bridge_url}/metrics", *worker_metrics]
        catalog = load_catalog(settings.topics_file)
        self.raw = settings.topic("raw.onec.product")
        self.egress = settings.topic("egress.bitrix24.product")
        self.probe = LagProbe(
            settings.kafka,
            {
                self.raw: catalog["raw.onec.product"].partitions,
                self.egress: catalog["egress.bitrix24.product"].partitions,
            },
        )
        self.tty = sys.stdout.isatty()

    def close(self) -> None:
        """Release the lag probe's consumer."""
        self.probe.close()

    async def scrape(self) -> dict:
        families: dict[str, list] = {}
        async with httpx.AsyncClient(timeout=2) as client:
            for url in self.urls:
                try:
                    text = (await client.get(url)).text
                except httpx.HTTPError:
                    continue
                for fam in text_string_to_metric_families(text):
                    families.setdefault(fam.name, []).extend(fam.samples)
        return families

    def line(
        self,
        f: dict,
        sink_lag: int | str,
        egress_lag: int | str,
        courier: dict[str, float] | None = None,
    ) -> str:
        return (
            f"accepted {_sum(f, 'mm_ingress_records', outcome='accepted'):.0f} "
            f"rejected {_sum(f, 'mm_ingress_records', outcome='rejected'):.0f} | "
            f"upserted {_sum(f, 'mm_sink_records', outcome='upserted'):.0f} "
            f"dup skipped {_sum(f, 'mm_sink_records', outcome='duplicate'):.0f} "
            f"stale {_sum(f, 'mm_sink_records', outcome='stale'):.0f} "
            f"invalid {_sum(f, 'mm_sink_records', outcome='invalid'):.0f} | "
            f"egress ok {_sum(f, 'mm_egress_deliveries', outcome='delivered'):.0f} "
            f"retried {_sum(f, 'mm_egress_deliveries', outcome='retried'):.0f} "
            f"DLQ {_sum(f, 'mm_dlq_records'):.0f} | "
            f"lag sink {sink_lag} egress {egress_lag} | "
            + flows_text(flow_counts((s for samples in f.values() for s in samples), courier))
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        while True:
            await loop.run_in_executor(None, self.probe.refresh)
            try:
                sink_lag = await loop.run_in_executor(
                    None, self.probe.lag, self.settings.streams.entity_sink_group, [self.raw]
                )
                egress_lag = await loop.run_in_executor(
                    None, self.probe.lag, self.settings.streams.egress_group, [self.egress]
                )
            except Exception:  # noqa: BLE001 — a group with no commits yet
                sink_lag = egress_lag = "?"
            async with httpx.AsyncClient(timeout=2) as client:
                courier = await self.courier.counts(client)
            text = self.line(await self.scrape(), sink_lag, egress_lag, courier)
            if self.tty:
                say("\r\x1b[2K" + text, end="")
            elif tick % 5 == 0:
                say(text)
            tick += 1
            await asyncio.sleep(1.0)
