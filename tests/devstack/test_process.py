"""devstack.process, the one launcher: a child started through it does not outlive the process
that started it, logs to its own file, and stops with its siblings."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from devstack.bench import processes as bench
from devstack.process import Child, ChildExited, spawn, stop_all
from devstack.stack import supervisor
from tests.support import processes as harness
from tests.support.processes import eventually

# A middle process that starts a long sleeper through spawn(), prints its pid, and waits.
_MIDDLE = r"""
import signal, subprocess, sys, time
from devstack.process import spawn
child = spawn([sys.executable, "-c", "import time; time.sleep(600)"], death_signal=signal.SIGTERM)
print(child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_child_gets_its_signal_when_the_parent_is_killed():
    middle = subprocess.Popen([sys.executable, "-c", _MIDDLE], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(middle.stdout.readline())
        assert not _gone(grandchild)
    finally:
        middle.kill()  # no chance to clean up
        middle.wait()
    eventually(
        lambda: _gone(grandchild), timeout_s=10, message=f"pid {grandchild} outlived its parent"
    )


def test_spawn_passes_popen_options_through(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:
        proc = spawn(
            [sys.executable, "-c", "import os; print(os.getcwd())"],
            death_signal=signal.SIGINT,
            stdout=sink,
            cwd=tmp_path,
        )
    assert proc.wait(30) == 0
    assert out.read_text().strip() == str(tmp_path)


# -- Child: the one launcher of `mmctl run`, the benchmarks and the tests -------------------


def test_the_stack_the_benchmarks_and_the_tests_start_children_through_one_launcher():
    assert harness.Proc is Child
    assert supervisor.Child is Child
    assert type(bench.mmctl("x", ["config"], {}, Path("."))) is Child
    assert type(bench.python_child("x", "devstack.bench.loadgen", [], {}, Path("."))) is Child


def test_a_child_logs_to_its_file_and_a_dead_one_names_its_log(tmp_path):
    child = Child(
        "talker",
        [],
        {"MM_SAID": "hello"},
        tmp_path,
        argv=[sys.executable, "-c", "import os; print(os.environ['MM_SAID']); raise SystemExit(3)"],
    )
    child.start()
    assert child.popen.wait(30) == 3
    assert child.tail() == "hello"
    with pytest.raises(ChildExited, match=r"talker exited with code 3; log talker.log:\nhello"):
        child.check_alive()


def test_stop_all_terminates_every_child_and_kills_the_one_that_ignores_it(tmp_path):
    polite = Child(
        "polite",
        [],
        {},
        tmp_path,
        argv=[sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
    )
    stubborn = Child(
        "stubborn",
        [],
        {},
        tmp_path,
        argv=[
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(600)",
        ],
    )
    children = [polite.start(), stubborn.start()]
    eventually(lambda: polite.tail() == "up" and stubborn.tail() == "up", timeout_s=30)
    stop_all(children, timeout_s=1.0)
    assert polite.popen.returncode == -signal.SIGTERM
    assert stubborn.popen.returncode == -signal.SIGKILL
    assert not polite.alive() and not stubborn.alive() and polite.stopped and stubborn.stopped
