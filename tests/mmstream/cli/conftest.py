"""Running ``mmctl`` as an SRE would: a child process with the test's MM_* environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devstack.stack.env import settings_env
from mmstream.kafka.lag import LagProbe
from tests.support.processes import eventually


class Mmctl:
    """``mmctl`` bound to one test's settings."""

    def __init__(self, settings, actor: str = "sre-test") -> None:
        self.settings = settings
        self.env = {
            **os.environ,
            **settings_env(settings),
            "MM_OPS__ACTOR": actor,
            "MM_LOG_LEVEL": "INFO",
        }

    def __call__(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "mmstream.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == expect, (
            f"mmctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        return proc

    def json(self, *args: str):
        return json.loads(self(*args, "--output", "json").stdout)


@pytest.fixture
def mmctl(settings):
    return Mmctl(settings)


def wait_committed_past(
    settings, group: str, topic: str, partition: int, offset: int, timeout_s: float = 90
) -> None:
    """Wait until ``group`` committed beyond ``offset``: it has handled that record."""
    probe = LagProbe(settings.kafka, {topic: partition + 1})
    try:
        eventually(
            lambda: probe.committed(group).get((topic, partition), -1) > offset,
            timeout_s,
            interval_s=0.5,
            message=f"{group} past {topic}[{partition}]@{offset}",
        )
    finally:
        probe.close()
