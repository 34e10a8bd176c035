"""The status page of `mmctl run`: its figures from metrics text (pure), and its JSON
endpoint and HTML against a real bridge, sink and egress."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack.flows import FLOWS
from devstack.stack.status_page import StatusPage, _rates, summarize
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.serve import free_port
from tests.support.processes import eventually
from tests.support.stack import onec_product


def _families(text: str) -> list:
    return list(text_string_to_metric_families(text))


SINK_A = """
mm_consumer_lag{group="mm-sink-entities",topic="raw.onec.product",partition="0"} 5
mm_consumer_lag{group="mm-sink-entities",topic="raw.onec.product",partition="1"} 7
mm_agent_records_total{agent="sink.entities"} 10
mm_dlq_records_total{stage="normalize",reason="invalid_record"} 2
"""
SINK_B = """
mm_consumer_lag{group="mm-sink-entities",topic="raw.onec.product",partition="0"} 3
mm_consumer_lag{group="mm-sink-entities",topic="raw.onec.product",partition="1"} 7
mm_agent_records_total{agent="sink.entities"} 4
mm_dlq_records_total{stage="normalize",reason="invalid_record"} 1
"""


def test_lag_is_max_per_partition_and_counters_add_up():
    sample = summarize({"a": _families(SINK_A), "b": _families(SINK_B), "c": None}, t=100.0)
    # Both replicas report the whole group: 5 and 7 (max per partition), not 5+3+7+7.
    assert sample.lag == {"mm-sink-entities": 12.0}
    assert sample.counters == {"agent sink.entities": 14.0}
    assert sample.dlq == {("normalize", "invalid_record"): 3.0}
    assert sample.up == {"a": True, "b": True, "c": False}


def test_rates_survive_a_counter_reset():
    before = summarize({"a": _families('mm_agent_records_total{agent="x"} 100\n')}, t=0.0)
    after = summarize({"a": _families('mm_agent_records_total{agent="x"} 120\n')}, t=2.0)
    restarted = summarize({"a": _families('mm_agent_records_total{agent="x"} 6\n')}, t=4.0)
    assert _rates(before, after) == {"agent x": 10.0}
    assert _rates(after, restarted) == {"agent x": 3.0}  # the process restarted: 6 new events


def test_empty_page_has_the_full_shape():
    snap = StatusPage(["http://127.0.0.1:9/metrics"]).snapshot()
    assert snap["updated_at"] is None
    assert set(snap) == {
        "updated_at",
        "interval_s",
        "sources",
        "throughput",
        "lag",
        "dlq",
        "totals",
        "flows",
    }
    assert snap["flows"] == dict.fromkeys(FLOWS, 0.0)


class _Served:
    """A StatusPage serving on a free port from its own thread and event loop."""

    def __init__(self, page: StatusPage) -> None:
        self.page = page
        self.port = free_port()
        self.thread = threading.Thread(
            target=lambda: asyncio.run(page.serve("127.0.0.1", self.port)), daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        url = f"http://127.0.0.1:{self.port}"
        eventually(lambda: _get(f"{url}/status.json"), 30, message="status page up")
        return url

    def __exit__(self, *exc) -> None:
        self.page.stop()
        self.thread.join(10)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


@pytest.mark.e2e
def test_status_json_shows_throughput_lag_and_dead_letters_of_a_real_stack(pipeline):
    pipeline.settings = pipeline.settings.model_copy(
        update={"streams": pipeline.settings.streams.model_copy(update={"lag_interval_s": 1.0})}
    )
    sink_port, egress_port = free_port(), free_port()
    pipeline.start_emulator()
    pipeline.start_sink(metrics_port=sink_port)
    pipeline.start_egress(metrics_port=egress_port)
    pipeline.start_bridge()
    settings = pipeline.settings
    urls = [
        f"{pipeline.bridge_url}/metrics",
        f"http://127.0.0.1:{sink_port}/metrics",
        f"http://127.0.0.1:{egress_port}/metrics",
    ]
    page = StatusPage(urls, interval_s=0.5)

    with _Served(page) as base:
        html = httpx.get(f"{base}/status", timeout=5)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert 'fetch("status.json"' in html.text  # the charts are drawn from the JSON endpoint
        assert "<script src" not in html.text and "cdn" not in html.text.lower()  # works offline

        products = [onec_product() for _ in range(5)]
        for rec in products:
            assert pipeline.post_product(rec).status_code == 202
        garbage = OutRecord(settings.topic("raw.onec.product"), b"\xff{not json", b"k-garbage")

        async def produce() -> None:
            producer = AckedProducer(settings.kafka, client_id="test-status")
            try:
                await producer.send_many([garbage])
            finally:
                producer.close()

        asyncio.run(produce())

        def settled() -> dict | None:
            pipeline.assert_alive()
            snap = httpx.get(f"{base}/status.json", timeout=5).json()
            totals = snap["totals"]
            done = (
                totals.get("ingress accepted", 0) >= 5
                and totals.get("sink upserted", 0) >= 5
                and totals.get("egress delivered", 0) >= 5
                and snap["dlq"]["total"] >= 1
                and settings.streams.entity_sink_group in snap["lag"]["current"]
                and settings.streams.egress_group in snap["lag"]["current"]
            )
            return snap if done else None

        snap = eventually(settled, 120, interval_s=0.5, message="status page figures")

        assert all(snap["sources"].values()), snap["sources"]
        # The one sink dead-letters what it cannot normalize (dlq.normalize, stage normalize).
        assert {"stage": "normalize", "reason": "unnormalizable", "count": 1.0} in snap["dlq"][
            "by_reason"
        ]
        # Throughput: some sampling interval saw the sink's agent process records.
        agent = snap["throughput"]["series"]["agent sink.entities"]
        assert max(v for v in agent if v is not None) > 0
        assert len(snap["lag"]["t"]) == len(
            snap["lag"]["series"][settings.streams.entity_sink_group]
        )
        # Everything was processed, so the sink group's lag drains to 0 on the page too.
        eventually(
            lambda: (
                httpx.get(f"{base}/status.json", timeout=5)
                .json()["lag"]["current"]
                .get(settings.streams.entity_sink_group)
                == 0
            ),
            60,
            message="sink lag 0",
        )
        json.dumps(snap)  # plain JSON all the way down
