"""Child-process plumbing shared by the embedded stack, the benchmarks and the tests."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mmstream.errors import ConfigurationError


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGINT, timeout_s: float = 10.0) -> None:
    """Send ``sig`` and wait; SIGKILL if the process outlives ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(url: str, *, alive: Callable[[], bool], what: str, log_path: Path | None = None,
              timeout_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200; fail early (ConfigurationError) if the process died."""
    where = f"; see {log_path}" if log_path else ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise ConfigurationError(f"{what} exited before it was ready{where}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ConfigurationError(f"{what} was not ready at {url} after {timeout_s:.0f}s{where}")
