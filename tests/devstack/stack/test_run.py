"""`mmctl run` — the embedded stack as a user starts it: it comes up, moves the demo load
through, prints its status line, and Ctrl-C stops every process it started — also when its
stdout is a pipe that closed, and when it is killed outright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from devstack.stack.pg_access import discard
from mmstream.serve import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _drop_moved_cluster(tmp_path):
    """As root, tmp_path (0700) is private: PostgreSQL's data moved out and is linked from
    there; drop it with the test rather than when a later start sweeps it."""
    yield
    link = tmp_path / "data" / "postgres"
    if link.is_symlink():
        discard(link.resolve())


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_") and k != "DATABASE_URL"}
    ports = {
        "MM_EMBEDDED__KAFKA_PORT": free_port(),
        "MM_EMBEDDED__POSTGRES_PORT": free_port(),
        "MM_EMBEDDED__BITRIX24_PORT": free_port(),
        "MM_EMBEDDED__ONEC_PORT": free_port(),
        "MM_EMBEDDED__REGISTRY_PORT": free_port(),
        "MM_EMBEDDED__SINK_METRICS_PORT": free_port(),
        "MM_EMBEDDED__EGRESS_METRICS_PORT": free_port(),
        "MM_INGRESS__PORT": free_port(),
        "MM_EMBEDDED__ENRICH_METRICS_PORT": free_port(),
        "MM_EMBEDDED__STATUS_PORT": free_port(),
    }
    env.update({k: str(v) for k, v in ports.items()})
    env.update(
        {
            "MM_EMBEDDED__DATA_DIR": str(tmp_path / "data"),
            "MM_EMBEDDED__DEMO_RATE_PER_S": "20",
            "MM_BITRIX24__WEBHOOK_URL": f"http://127.0.0.1:{ports['MM_EMBEDDED__BITRIX24_PORT']}/rest/1/runtest/",
        }
    )
    return env


def test_run_moves_the_demo_load_and_ctrl_c_stops_everything(tmp_path):
    env = _env(tmp_path)
    out = open(tmp_path / "run.out", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmstream.cli.main", "run"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        upserted = delivered = 0
        while time.monotonic() < deadline and not (upserted and delivered):
            assert proc.poll() is None, (tmp_path / "run.out").read_text()
            time.sleep(1)
            lines = [
                l
                for l in (tmp_path / "run.out").read_text().splitlines()
                if l.startswith("accepted")
            ]
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
    ports = {int(v) for k, v in env.items() if k.endswith("_PORT")}
    assert not _listening(ports), "ports still listened on after Ctrl-C"


def test_port_taken_gives_a_clear_message(tmp_path):
    env = _env(tmp_path)
    port = int(env["MM_INGRESS__PORT"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        res = subprocess.run(
            [sys.executable, "-m", "mmstream.cli.main", "run", "--no-demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert res.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "MM_INGRESS__PORT" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def _ready(env) -> bool:
    try:  # the status page is served last: everything else is up
        return (
            httpx.get(
                f"http://127.0.0.1:{env['MM_EMBEDDED__STATUS_PORT']}/status.json", timeout=2
            ).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def _gone(proc: psutil.Process) -> bool:
    try:  # an orphan's zombie waits for a reaper that may not exist in a container
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _watch(
    top: psutil.Process, env, seen: dict[int, psutil.Process], timeout_s: float = 180
) -> None:
    """Record every process under ``top`` until the stack is ready (or ``top`` ended)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not _gone(top):
        try:
            seen.update((p.pid, p) for p in top.children(recursive=True))
        except psutil.NoSuchProcess:
            return
        if _ready(env):
            seen.update((p.pid, p) for p in top.children(recursive=True))
            return
        time.sleep(0.3)


def _listening(ports: set[int]) -> set[int]:
    # Listeners, not bindability: another program's client may hold one of these ports as its
    # local end for a moment, which is no leftover of ours.
    return {
        c.laddr.port
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }


def _assert_nothing_left(seen: dict[int, psutil.Process], env, timeout_s: float) -> None:
    ports = {int(v) for k, v in env.items() if k.endswith("_PORT")}

    def left() -> list[str]:
        procs = []
        for p in seen.values():
            try:
                if not _gone(p):
                    procs.append(f"{p.pid} {' '.join(p.cmdline()[:4])}")
            except psutil.NoSuchProcess:
                pass
        return procs + [f"port {port} listened on" for port in sorted(_listening(ports))]

    deadline = time.monotonic() + timeout_s
    while rest := left():
        assert time.monotonic() < deadline, f"left running {timeout_s:.0f}s after the stop: {rest}"
        time.sleep(0.3)


def test_ctrl_c_stops_everything_when_stdout_was_a_closed_pipe(tmp_path):
    """`mmctl run | head -1`, then Ctrl-C to the terminal's process group: writing to the closed
    pipe must not kill the supervisor before it stopped its children."""
    env = _env(tmp_path)
    shell = subprocess.Popen(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m mmstream.cli.main run --no-demo 2>"{tmp_path}/run.err"'
            f' | head -1 >"{tmp_path}/first.line"',
        ],
        env=env,
        start_new_session=True,
    )  # its own process group, as a terminal's job
    seen: dict[int, psutil.Process] = {}
    try:
        _watch(psutil.Process(shell.pid), env, seen)
        ready = _ready(env)
    finally:
        os.killpg(shell.pid, signal.SIGINT)
        shell.wait(60)
    _assert_nothing_left(seen, env, timeout_s=60)
    errors = (tmp_path / "run.err").read_text()
    assert ready, errors
    assert (tmp_path / "first.line").read_text().startswith("Kafka")  # head got its line and left
    assert len(seen) >= 10, seen  # broker, PostgreSQL, registry, emulators, bridge, workers
    assert "Traceback" not in errors


def test_killing_the_supervisor_stops_every_child(tmp_path):
    """SIGKILL leaves the supervisor no chance to clean up: the kernel tells the children."""
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmstream.cli.main", "run", "--no-demo"],
        env=env,
        stdout=open(tmp_path / "run.out", "w"),
        stderr=subprocess.STDOUT,
    )
    seen: dict[int, psutil.Process] = {}
    try:
        _watch(psutil.Process(proc.pid), env, seen)
        ready = _ready(env)
    finally:
        proc.kill()
        proc.wait(60)
    _assert_nothing_left(seen, env, timeout_s=30)
    assert ready, (tmp_path / "run.out").read_text()
    assert len(seen) >= 10, seen
