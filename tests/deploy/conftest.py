"""The command-line validators the deploy tests run: promtool and amtool (Debian's
prometheus / prometheus-alertmanager), kubectl (kustomize) and Alertmanager itself. A
missing one is installed with apt-get (as `make deploy-tools` does); the tests skip only
where there is no apt-get to install it with."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

# Command -> the Debian package that brings it.
PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "kubectl": "kubectl",
    # The awks render.awk must agree on: the Alertmanager image's is busybox's.
    "busybox": "busybox",
    "mawk": "mawk",
    "gawk": "gawk",
}
_updated = False


def ensure_tool(name: str) -> str:
    """The path of command ``name``, installing its Debian package when it is missing."""
    global _updated
    path = shutil.which(name)
    if path:
        return path
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip(
            f"{name} is not installed and there is no apt-get to install {PACKAGES[name]} with"
        )
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # One installer at a time: `make test-unit` runs two xdist workers, and a second apt-get
    # fails at once on dpkg's lock instead of waiting for it.
    with (Path(tempfile.gettempdir()) / "mm-test-apt.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path := shutil.which(name):  # the other worker installed it meanwhile
            return path
        if not _updated:
            subprocess.run([*sudo, apt, "update", "-qq"], check=True, env=env, timeout=600)
            _updated = True
        subprocess.run(
            [*sudo, apt, "install", "-y", "-qq", PACKAGES[name]], check=True, env=env, timeout=900
        )
    path = shutil.which(name)
    assert path, f"apt-get installed {PACKAGES[name]} but {name} is still not on PATH"
    return path


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    return ensure_tool
