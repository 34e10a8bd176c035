"""`mmctl run` — the embedded stack as a user starts it: it comes up, moves the demo load
through, prints its status line, and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from mmstream.embedded.ports import free_port

pytestmark = pytest.mark.e2e


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_") and k != "DATABASE_URL"}
    ports = {
        "MM_EMBEDDED__KAFKA_PORT": free_port(), "MM_EMBEDDED__POSTGRES_PORT": free_port(),
        "MM_EMBEDDED__BITRIX24_PORT": free_port(), "MM_EMBEDDED__ONEC_PORT": free_port(),
        "MM_EMBEDDED__REGISTRY_PORT": free_port(), "MM_EMBEDDED__SINK_METRICS_PORT": free_port(),
        "MM_EMBEDDED__EGRESS_METRICS_PORT": free_port(), "MM_INGRESS__PORT": free_port(),
        "MM_EMBEDDED__ENRICH_METRICS_PORT": free_port(), "MM_EMBEDDED__STATUS_PORT": free_port(),
    }
    env.update({k: str(v) for k, v in ports.items()})
    env.update({"MM_EMBEDDED__DATA_DIR": str(tmp_path / "data"), "MM_EMBEDDED__DEMO_RATE_PER_S": "20",
                "MM_BITRIX24__WEBHOOK_URL": f"http://127.0.0.1:{ports['MM_EMBEDDED__BITRIX24_PORT']}/rest/1/runtest/"})
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_run_moves_the_demo_load_and_ctrl_c_stops_everything(tmp_path):
    env = _env(tmp_path)
    out = open(tmp_path / "run.out", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "mmstream.cli.main", "run"], env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        upserted = delivered = 0
        while time.monotonic() < deadline and not (upserted and delivered):
            assert proc.poll() is None, (tmp_path / "run.out").read_text()
            time.sleep(1)
            lines = [l for l in (tmp_path / "run.out").read_text().splitlines() if l.startswith("accepted")]
            if lines:
                fields = lines[-1].split()
                upserted = int(fields[fields.index("upserted") + 1])
                delivered = int(fields[fields.index("ok") + 1])
        text = (tmp_path / "run.out").read_text()
        assert upserted > 0 and delivered > 0, text
        bridge = f"http://127.0.0.1:{env['MM_INGRESS__PORT']}"
        assert httpx.get(f"{bridge}/health/ready", timeout=5).status_code == 200
        status = f"http://127.0.0.1:{env['MM_EMBEDDED__STATUS_PORT']}/status"
        assert f"Status     {status} " in text  # the status page's URL is printed
        page = httpx.get(f"{status}.json", timeout=5).json()
        assert page["sources"] and all(page["sources"].values()), page["sources"]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    text = (tmp_path / "run.out").read_text()
    assert code == 0, text
    assert "stopped." in text and "Traceback" not in text
    ports = [int(v) for k, v in env.items() if k.endswith("_PORT")]
    for port in ports:
        assert _port_free(port), f"port {port} still in use after Ctrl-C"


def test_port_taken_gives_a_clear_message(tmp_path):
    env = _env(tmp_path)
    port = int(env["MM_INGRESS__PORT"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        res = subprocess.run([sys.executable, "-m", "mmstream.cli.main", "run", "--no-demo"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "MM_INGRESS__PORT" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
