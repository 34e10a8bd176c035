"""`mmctl run` with the demo on and every emulator moved to another port: the clients follow
the emulators (no URL is set here), and all four flows complete at their targets — master
data in Bitrix24, deliveries the couriers complete (a Bitrix24 event, enriched from the moved
emulator, confirmed in 1С), instant orders, returns and cash documents posted in 1С — as the
status line and the status page count them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from devstack.stack.flows import FLOWS
from tests.devstack.stack.test_run import _drop_moved_cluster, _env  # noqa: F401 — the fixture

pytestmark = pytest.mark.e2e
_FLOW = re.compile(r"(master|deliveries|instant orders|returns|cash) (\d+)")


def _flows(text: str) -> dict[str, int]:
    lines = [line for line in text.splitlines() if line.startswith("accepted")]
    return {name: int(n) for name, n in _FLOW.findall(lines[-1])} if lines else {}


def test_demo_completes_every_flow_on_moved_emulator_ports(tmp_path):
    env = _env(tmp_path)
    del env["MM_BITRIX24__WEBHOOK_URL"]  # the default URL must follow the moved emulator
    out_path = tmp_path / "run.out"
    out = open(out_path, "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmstream.cli.main", "run"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        flows: dict[str, int] = {}
        while time.monotonic() < deadline and not (
            len(flows) == len(FLOWS) and all(flows.values())
        ):
            assert proc.poll() is None, out_path.read_text()
            time.sleep(2)
            flows = _flows(out_path.read_text())
        text = out_path.read_text()
        assert set(flows) == set(FLOWS) and all(flows.values()), f"{flows}\n{text[-3000:]}"
        page = httpx.get(
            f"http://127.0.0.1:{env['MM_EMBEDDED__STATUS_PORT']}/status.json", timeout=5
        ).json()
        assert set(page["flows"]) == set(FLOWS) and all(page["flows"].values()), page["flows"]
        assert "WARNING" not in text and "Traceback" not in text, text[-3000:]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, out_path.read_text()[-3000:]
