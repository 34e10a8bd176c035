"""run_poller as a process: polls a 1С emulator process round after round, publishes what
changed, and exits cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx

from devstack.stack.env import settings_env
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.settings import REPO_ROOT
from mmstream.topics import load_catalog
from tests.connectors.onec.conftest import PRODUCTS, product
from tests.support.processes import Proc, wait_http
from tests.support.topics import count_records

RUN_POLLER = (
    "from connectors.onec.odata.runner import run_poller; "
    "from mmstream.settings import get_settings; run_poller(get_settings())"
)


def test_runner_polls_rounds_until_sigterm(settings, tmp_path):
    apply(settings, load_catalog(settings.topics_file))
    port = free_port()
    onec = Proc(
        "onec", ["emulate", "onec", "--port", str(port)], settings_env(settings), tmp_path
    ).start()
    poller = None
    try:
        wait_http(f"http://127.0.0.1:{port}/health", onec)
        admin = f"http://127.0.0.1:{port}/_emulator/odata/{PRODUCTS}"
        written = httpx.put(
            admin, json=[product(f"Товар {n}") for n in range(3)], timeout=10
        ).json()
        settings = settings.model_copy(
            update={
                "odata": settings.odata.model_copy(
                    update={
                        "base_url": f"http://127.0.0.1:{port}/trade/odata/standard.odata/",
                        "username": "",
                        "entity_sets": [PRODUCTS, "Склады"],
                        "poll_interval_s": 0.3,
                        "page_size": 2,
                    }
                )
            }
        )
        with open(tmp_path / "poller.log", "wb") as log:
            poller = subprocess.Popen(
                [sys.executable, "-c", RUN_POLLER],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **settings_env(settings)},
            )
        first = count_records(settings, "raw.onec.product", expect_at_least=3)
        assert sorted(m.key().decode() for m in first) == sorted(r["Ref_Key"] for r in written)
        (changed,) = httpx.put(
            admin, json=[{**written[0], "Description": "Новое имя"}], timeout=10
        ).json()
        later = [
            json.loads(m.value())
            for m in count_records(settings, "raw.onec.product", expect_at_least=4)
        ]
        assert len(later) == 4 and [d for d in later if d["Description"] == "Новое имя"] == [
            changed
        ]
        assert poller.poll() is None, (tmp_path / "poller.log").read_text()
        poller.send_signal(signal.SIGTERM)
        assert poller.wait(30) == 0, (tmp_path / "poller.log").read_text()
    finally:
        if poller is not None and poller.poll() is None:
            poller.kill()
            poller.wait()
        onec.stop()
