"""Child processes of a test (bridge, workers, emulators): start, wait, kill, logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mmstream.embedded.process import spawn
from mmstream.embedded.process import wait_http as _wait_http
from mmstream.errors import ConfigurationError


class Proc:
    """One `mmctl` child process with its log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.stopped = False  # killed on purpose by the test

    def start(self) -> Proc:
        """Start (or restart) the process."""
        self.stopped = False
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            # Killed with the test session, so a killed pytest leaves no worker behind.
            self.popen = spawn(
                [sys.executable, "-m", "mmstream.cli.main", *self.args], death_signal=signal.SIGKILL,
                env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self, sig: int = signal.SIGKILL, grace_s: float = 15.0) -> None:
        """Send a signal and wait for the process to end (SIGKILL after ``grace_s``)."""
        if self.send(sig):
            self.wait_ended(grace_s)

    def send(self, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig`` to the process, meant to end it, without waiting; False if it is
        not running."""
        self.stopped = True
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(sig)
            return True
        return False

    def wait_ended(self, grace_s: float = 15.0) -> None:
        """Wait for the process to end after send(); SIGKILL after ``grace_s``."""
        if self.popen is None:
            return
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def stop(self, grace_s: float = 15.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL after a grace period."""
        self.kill(signal.SIGTERM, grace_s)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http(url: str, proc: Proc, timeout_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200, failing early (with the log tail) if the process died."""
    try:
        _wait_http(url, alive=proc.alive, what=proc.name, timeout_s=timeout_s)
    except ConfigurationError as exc:
        raise RuntimeError(f"{exc}\n{proc.tail()}") from None


def eventually(check, timeout_s: float = 60.0, interval_s: float = 0.2, message: str = ""):
    """Poll ``check()`` until it returns a truthy value; return it, or fail with the last one."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s}s: {message} (last: {last!r})")
