"""process.spawn: a child started through it does not outlive the process that started it."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil

from mmstream.embedded.process import spawn
from tests.support.processes import eventually

# A middle process that starts a long sleeper through spawn(), prints its pid, and waits.
_MIDDLE = r"""
import signal, subprocess, sys, time
from mmstream.embedded.process import spawn
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
    eventually(lambda: _gone(grandchild), timeout_s=10, message=f"pid {grandchild} outlived its parent")


def test_spawn_passes_popen_options_through(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:
        proc = spawn([sys.executable, "-c", "import os; print(os.getcwd())"], death_signal=signal.SIGINT,
                     stdout=sink, cwd=tmp_path)
    assert proc.wait(30) == 0
    assert out.read_text().strip() == str(tmp_path)
