"""Child processes of a bench run: start with a log file, wait until ready, stop, read logs.

Same approach as the supervisor and the test harness: ``python -m <module> ...`` with the
settings passed as ``MM_*`` variables, each child in its own session so that Ctrl-C reaches
only the bench runner, which then stops its children itself (in a known order).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mmstream.errors import MMStreamError


class BenchError(MMStreamError):
    """A benchmark could not be run (a process died, a service never became ready...)."""

    code = "bench_error"


class Child:
    """One Python child process (``python -m module args``) logging to its own file."""

    def __init__(self, name: str, module: str, args: list[str], env: dict[str, str],
                 log_dir: Path) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.started_at = 0.0  # time.time() just before the spawn: start-up is measured from it

    def start(self, *, stdout=None) -> "Child":
        """Spawn the process. ``stdout`` may be subprocess.PIPE for children that report there."""
        log = open(self.log_path, "ab")
        self.started_at = time.time()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env={**os.environ, **self.env},
            stdout=log if stdout is None else stdout,
            stderr=log,
            start_new_session=True,
        )
        log.close()  # the child holds its own descriptor
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else -1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Faust leaves its group, uvicorn drains), SIGKILL if it hangs."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self, lines: int = 25) -> str:
        """The end of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise BenchError (with the log tail) if the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited with code {self.popen.returncode}; "
                             f"log {self.log_path}:\n{self.tail()}")


def mmctl(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """A child running an ``mmctl`` command exactly as production starts it."""
    return Child(name, "mmstream.cli.main", args, env, log_dir)


def wait_http(url: str, child: Child, timeout_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200; fail early (with the log) if the child died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        child.check_alive()
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{child.name} not ready at {url} after {timeout_s:.0f}s; "
                     f"log {child.log_path}:\n{child.tail()}")


class ChildSet:
    """Every child a bench run started, so that cleanup can stop all of them (even on Ctrl-C)."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def add(self, child: Child) -> Child:
        self._children.append(child)
        return child

    def stop_all(self) -> None:
        # Signal all first, then wait: Faust workers take seconds to leave their groups and
        # waiting for them one by one would add those seconds up.
        for child in reversed(self._children):
            if child.alive():
                child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        for child in self._children:
            if child.popen is None:
                continue
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()
        self._children.clear()
