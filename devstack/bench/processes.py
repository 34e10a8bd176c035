"""Child processes of a bench run: start with a log file, wait until ready, stop, read logs.

The one launcher of the supervisor and the test harness (devstack.process.Child):
``python -m <module> ...`` with the settings passed as ``MM_*`` variables, each child in its
own session so that Ctrl-C reaches only the bench runner, which then stops its children.
"""

from __future__ import annotations

import sys
from pathlib import Path

from devstack.process import Child, ChildExited, stop_all, wait_ready
from mmstream.errors import ConfigurationError, MMStreamError


class BenchError(MMStreamError):
    """A benchmark could not be run (a process died, a service never became ready...)."""

    code = "bench_error"


def describe(exc: BaseException) -> str:
    """An error as the report shows it: our own messages as they are, others with their type."""
    return str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"


def python_child(
    name: str, module: str, args: list[str], env: dict[str, str], log_dir: Path
) -> Child:
    """A bench helper process: ``python -m module args`` (the load generator, the baselines)."""
    return Child(name, args, env, log_dir, argv=[sys.executable, "-m", module, *args])


def mmctl(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """A child running an ``mmctl`` command exactly as production starts it."""
    return Child(name, args, env, log_dir)


def check_alive(proc: Child) -> None:
    """Raise BenchError (with the log tail) if the process has exited."""
    try:
        proc.check_alive()
    except ChildExited as exc:
        raise BenchError(str(exc)) from None


def wait_http(url: str, proc: Child, timeout_s: float = 30.0) -> None:
    """Wait until ``url`` answers 200; fail early (with the log) if the child died."""
    try:
        wait_ready(url, proc, timeout_s)
    except ConfigurationError as exc:
        raise BenchError(str(exc)) from None


class ChildSet:
    """Every child a bench run started, so that cleanup can stop all of them (even on Ctrl-C)."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def add(self, proc: Child) -> Child:
        self._children.append(proc)
        return proc

    def stop_all(self) -> None:
        stop_all(self._children)
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
