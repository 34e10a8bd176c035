"""The one process launcher of the embedded stack, the benchmarks and the tests.

``spawn`` starts any child so that it dies with its parent; ``Child`` is one such child (an
``mmctl`` command by default) with its own log file, and ``stop_all`` / ``wait_ready`` stop
and await a set of them. The supervisor (``mmctl run``), the bench runner and the test
harness all start their processes through ``Child``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from mmstream.errors import ConfigurationError, MMStreamError

MMCTL_MODULE = "mmstream.cli.main"  # `python -m` it: exactly the `mmctl` production runs

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Bound once here: the hook below runs between fork and exec, where loading a library is unsafe.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with(parent_pid: int, sig: int) -> Callable[[], None]:
    def hook() -> None:  # runs in the child after fork (and after its user switch), before exec
        _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the hook armed the signal
            os.kill(os.getpid(), sig)

    return hook


def spawn(
    args: list[str], *, death_signal: int = signal.SIGKILL, **popen: object
) -> subprocess.Popen:
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


def stop_process(
    proc: subprocess.Popen | None, sig: int = signal.SIGINT, timeout_s: float = 10.0
) -> None:
    """Send ``sig`` and wait; SIGKILL if the process outlives ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(
    url: str,
    *,
    alive: Callable[[], bool],
    what: str,
    log_path: Path | None = None,
    timeout_s: float = 30.0,
) -> None:
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


class ChildExited(MMStreamError):
    """A child process ended while it was expected to run (its log's last lines included)."""

    code = "child_exited"


class Child:
    """One child process with its own log file: ``python -m mmstream.cli.main ARGS`` (an
    ``mmctl`` command exactly as production starts it) unless ``argv`` gives the command.

    The child runs in its own session, so Ctrl-C reaches only the parent, which stops its
    children itself in a known order; and it dies with the parent however that ends (SIGKILL:
    our processes are built to survive a kill), so no child keeps a port or a group afterwards.
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        argv: list[str] | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.argv = argv if argv is not None else [sys.executable, "-m", MMCTL_MODULE, *args]
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.started_at = 0.0  # time.time() just before the spawn: start-up is measured from it
        self.stopped = False  # ended on purpose (send/kill/stop), not by a crash

    def start(self) -> Child:
        """Start (or restart) the process; stdout and stderr go to its log file."""
        self.stopped = False
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.started_at = time.time()
            self.popen = spawn(
                self.argv,
                death_signal=signal.SIGKILL,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else -1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig``, meant to end the process, without waiting; False if it is not running."""
        self.stopped = True
        if self.alive():
            self.popen.send_signal(sig)
            return True
        return False

    def wait_ended(self, grace_s: float = 15.0) -> None:
        """Wait for the process to end after send(); SIGKILL after ``grace_s``."""
        if self.popen is None:
            return
        try:
            self.popen.wait(max(0.1, grace_s))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self, sig: int = signal.SIGKILL, grace_s: float = 15.0) -> None:
        """Send a signal and wait for the process to end (SIGKILL after ``grace_s``)."""
        if self.send(sig):
            self.wait_ended(grace_s)

    def stop(self, grace_s: float = 15.0) -> None:
        """Graceful stop: SIGTERM (Faust leaves its group, uvicorn drains), SIGKILL if it hangs."""
        self.kill(signal.SIGTERM, grace_s)

    def tail(self, lines: int = 40) -> str:
        """The end of the child's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def excerpt(self, lines: int = 25) -> str:
        """ "log NAME.log" and its last lines, for error messages."""
        tail = self.tail(lines)
        return f"log {self.log_path.name}" + (f":\n{tail}" if tail else " (empty)")

    def check_alive(self) -> None:
        """Raise ChildExited (with the log's last lines) if the process has ended."""
        if self.popen is not None and self.popen.poll() is not None:
            raise ChildExited(
                f"{self.name} exited with code {self.popen.returncode}; {self.excerpt()}"
            )


def wait_ready(url: str, child: Child, timeout_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200; ConfigurationError with the child's log excerpt if the
    child died first or never became ready."""
    try:
        wait_http(url, alive=child.alive, what=child.name, timeout_s=timeout_s)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc}; {child.excerpt()}") from None


def stop_all(children: Iterable[Child], timeout_s: float = 15.0) -> None:
    """SIGTERM every child (last started first), then wait for all of them against one
    deadline, SIGKILL for those that outlive it. All at once: Faust workers take seconds to
    leave their group, and waiting for them one by one would add those seconds up (nothing is
    lost by stopping them together: they commit only what they fully processed)."""
    children = list(children)
    for child in reversed(children):
        child.send(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in children:
        child.wait_ended(deadline - time.monotonic())
