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

from mmstream.embedded.process import spawn, stop_process
from mmstream.embedded.process import wait_http as _wait_http
from mmstream.errors import ConfigurationError, MMStreamError


class BenchError(MMStreamError):
    """A benchmark could not be run (a process died, a service never became ready...)."""

    code = "bench_error"


def describe(exc: BaseException) -> str:
    """An error as the report shows it: our own messages as they are, others with their type."""
    return str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"


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

    def start(self) -> Child:
        """Spawn the process (stdout and stderr to its log file)."""
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.started_at = time.time()
            # Dies with the bench runner, however it ends: no worker keeps a port afterwards.
            self.popen = spawn(
                [sys.executable, "-m", self.module, *self.args],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                # Ctrl-C reaches the bench runner only; it stops its children in order.
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else -1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Faust leaves its group, uvicorn drains), SIGKILL if it hangs."""
        stop_process(self.popen, signal.SIGTERM, timeout_s)

    def tail(self, lines: int = 25) -> str:
        """The end of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def excerpt(self, lines: int = 25) -> str:
        """"log NAME.log" and its last lines, for error messages (the runner keeps the logs
        of a run that had errors, under the same file names)."""
        tail = self.tail(lines)
        return f"log {self.log_path.name}" + (f":\n{tail}" if tail else " (empty)")

    def check_alive(self) -> None:
        """Raise BenchError (with the log tail) if the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited with code {self.popen.returncode}; {self.excerpt()}")


def mmctl(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """A child running an ``mmctl`` command exactly as production starts it."""
    return Child(name, "mmstream.cli.main", args, env, log_dir)


def wait_http(url: str, child: Child, timeout_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200; fail early (with the log) if the child died."""
    try:
        _wait_http(url, alive=child.alive, what=child.name, timeout_s=timeout_s)
    except ConfigurationError as exc:
        raise BenchError(f"{exc}; {child.excerpt()}") from None


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


def attempt(series: list, fn, what: str, say):
    """Run one measurement; a failure marks ``series`` (``Series`` objects) with its reason.

    A failed run is not retried in later repetitions: it would likely fail again and cost
    its whole time-out once more, while the other series go on.
    """
    if series[0].error:
        return None
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 — recorded in the report with its reason
        for s in series:
            s.error = describe(exc)
        say(f"  {what} FAILED: {describe(exc).splitlines()[0]}")
        return None
