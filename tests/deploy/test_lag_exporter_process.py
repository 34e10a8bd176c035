"""The independent lag exporter as deployed (`python -m mmstream.kafka.lag_exporter`, the
k8s Deployment mm-lag-exporter and the compose service lag-exporter): with no worker
running, it exports the lag of the pipeline's groups from their committed offsets."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from devstack.stack.env import settings_env
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.topics import load_catalog
from tests.mmstream.kafka.test_lag_exporter import _commit, _produce
from tests.support.processes import eventually


def _lags(text: str, group: str) -> dict[tuple[str, str], float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("mm_consumer_lag{") and f'group="{group}"' in line:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[(labels["topic"], labels["partition"])] = float(line.rsplit(" ", 1)[1])
    return out


def test_exports_lag_of_the_default_groups_without_any_worker(settings, tmp_path):
    apply(settings, load_catalog(settings.topics_file))
    topic, group = settings.topic("raw.onec.product"), settings.streams.entity_sink_group
    _produce(settings, topic, {0: 3, 1: 2})
    _commit(settings, group, topic, {0: 1, 1: 2})  # no consumer of the group runs
    port = free_port()
    env = {**os.environ, **settings_env(settings), "MM_LOG_LEVEL": "INFO"}
    log = (tmp_path / "lag-exporter.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mmstream.kafka.lag_exporter",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--interval-s",
            "0.5",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def scraped():
            assert proc.poll() is None, (tmp_path / "lag-exporter.log").read_text()
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return None
            lags = _lags(text, group)
            return text if lags.get((topic, "0")) == 2 and (topic, "1") in lags else None

        text = eventually(scraped, 60, interval_s=0.3, message="lag exported")
        assert _lags(text, group)[(topic, "1")] == 0
        assert 'mm_up{component="lag-exporter"} 1.0' in text
        assert re.search(
            rf'mm_consumer_lag_updated_timestamp_seconds{{group="{re.escape(group)}"}} ', text
        )
    finally:
        proc.terminate()
        assert proc.wait(15) == 0  # SIGTERM ends it cleanly
        log.close()
