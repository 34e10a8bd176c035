"""Child-process plumbing shared by the embedded stack, the benchmarks and the tests."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mmstream.errors import ConfigurationError

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Bound once here: the hook below runs between fork and exec, where loading a library is unsafe.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with(parent_pid: int, sig: int) -> Callable[[], None]:
    def hook() -> None:  # runs in the child after fork (and after its user switch), before exec
        _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the hook armed the signal
            os.kill(os.getpid(), sig)
    return hook


def spawn(args: list[str], *, death_signal: int = signal.SIGKILL, **popen: object) -> subprocess.Popen:
    """``subprocess.Popen(args, **popen)`` whose child receives ``death_signal`` when this process
    dies, however it dies (SIGKILL, a crash, a closed pipe): no orphan keeps a port or a data dir.

    Uses Linux's PR_SET_PDEATHSIG, which the kernel fires when the *thread* that forked the child
    ends, so the signal is armed only for children started from the main thread (the supervisor's
    and the tests' launchers start theirs there); elsewhere the child is started without it. Pick
    the signal that ends the program for certain with nobody left to escalate: SIGKILL for our
    Python processes (built to survive a kill: they commit only what they finished, and a
    graceful stop can hang on the broker that goes down at the same moment), SIGINT for
    PostgreSQL (fast shutdown) and the broker.
    """
    if _prctl is not None and threading.current_thread() is threading.main_thread():
        popen["preexec_fn"] = _die_with(os.getpid(), death_signal)
    return subprocess.Popen(args, **popen)


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
