"""The layer map (README "Layers", [tool.importlinter] in pyproject.toml) holds, and its
core contract names every core module: a new module of mmstream is either core (and added to
the list) or part of cli/ops."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ABOVE_THE_CORE = {"cli", "ops"}


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_the_core_contract_lists_every_core_module():
    here = {
        p.stem
        for p in (REPO / "mmstream").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    core = {f"mmstream.{name}" for name in here - ABOVE_THE_CORE}
    assert set(_contracts()["core"]["source_modules"]) == core


def test_the_import_contracts_are_kept():
    # The same check as `make lint`; here so that a broken layer fails the quick tier too.
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
