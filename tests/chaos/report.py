"""The fault and abuse suite (`make chaos`): the report plugin (registered in tests/conftest.py).

Three lengths of the same scenarios:
- ``short`` (inside ``make test``): the scenario's smallest form, a few seconds each;
- ``quick`` (``make chaos ARGS=--quick``): the whole suite in at most 5 minutes;
- ``full`` (``make chaos``): the whole suite in at most 20 minutes.

Every scenario calls ``chaos_report.record(...)`` once with what it offered and what became
of it, then asserts its verdict. At the end of the session the rows are printed as a table
and written to ``chaos-results/latest.json`` (a list, one object per scenario) when the run
was a ``make chaos`` run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("MM_CHAOS_RESULTS", REPO / "chaos-results"))

FIELDS = (
    "name",
    "offered",
    "accepted",
    "stored",
    "at_target",
    "dead_lettered",
    "lost",
    "duplicated",
    "verdict",
)


@dataclass
class ScenarioResult:
    """One row of the chaos report. ``verdict`` is ``pass`` or ``fail``; ``notes`` says what
    the figures mean where it is not obvious (an expected loss of the memory-only broker)."""

    name: str
    offered: int = 0
    accepted: int = 0
    stored: int = 0
    at_target: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    verdict: str = "fail"
    seconds: float = 0.0
    notes: str = ""
    extra: dict = field(default_factory=dict)


class ChaosReport:
    """The rows of this run, in the order the scenarios finished."""

    def __init__(self) -> None:
        self.rows: list[ScenarioResult] = []

    def record(self, name: str, *, verdict: bool | str, **figures) -> ScenarioResult:
        """Add a scenario's row. ``verdict`` True/False or "pass"/"fail"."""
        if isinstance(verdict, bool):
            verdict = "pass" if verdict else "fail"
        if verdict not in ("pass", "fail"):
            raise ValueError(f"verdict must be pass or fail, not {verdict!r}")
        known = {k: figures.pop(k) for k in list(figures) if k in ScenarioResult.__annotations__}
        row = ScenarioResult(name=name, verdict=verdict, **known, extra=figures)
        self.rows = [r for r in self.rows if r.name != name] + [row]
        return row

    def table(self) -> str:
        cols = [*FIELDS[:-1], "seconds", "verdict"]
        data = [
            [str(getattr(r, c) if c != "seconds" else f"{r.seconds:.0f}") for c in cols]
            for r in self.rows
        ]
        widths = [max(len(c), *(len(d[i]) for d in data)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(d, widths, strict=True)) for d in data]
        notes = [f"- {r.name}: {r.notes}" for r in self.rows if r.notes]
        return "\n".join(lines + (["", *notes] if notes else []))

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([asdict(r) for r in self.rows], ensure_ascii=False, indent=2))


def keep_logs(name: str, log_dir: Path) -> Path:
    """Copy a failed scenario's process logs to ``chaos-results/logs/<name>``: the test's
    temporary folder is rotated away by later pytest runs, the evidence must outlive it."""
    import shutil

    kept = RESULTS / "logs" / name.replace(" ", "-")
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(log_dir, kept)
    return kept


def pytest_addoption(parser):
    group = parser.getgroup("chaos")
    group.addoption(
        "--chaos",
        action="store_true",
        default=False,
        help="run the fault and abuse scenarios in full (make chaos)",
    )
    group.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="with --chaos: the quick form (at most 5 minutes)",
    )


@pytest.fixture(scope="session")
def chaos_mode(request) -> str:
    """``short`` inside make test, ``quick`` or ``full`` under make chaos."""
    if not request.config.getoption("--chaos"):
        return "short"
    return "quick" if request.config.getoption("--quick") else "full"


_REPORT = ChaosReport()


@pytest.fixture(scope="session")
def chaos_report() -> ChaosReport:
    return _REPORT


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _REPORT.rows:
        return
    mode = (
        ("quick" if config.getoption("--quick") else "full")
        if config.getoption("--chaos")
        else "short"
    )
    terminalreporter.section(f"chaos scenarios ({mode})")
    terminalreporter.write_line(_REPORT.table())
    if config.getoption("--chaos"):
        out = RESULTS / "latest.json"
        _REPORT.write(out)
        terminalreporter.write_line(f"\nwritten to {out}")
