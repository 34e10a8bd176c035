"""CPU accounting: what a process used, and whether something outside the bench competed.

The machine has two cores that every process of a run shares, and other programs (a test
run, an editor's indexer) may be busy at the same time. Measuring how much CPU the machine
spent outside the bench's own process tree lets the report flag a disturbed run instead
of silently publishing its numbers as if the machine had been quiet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one live process (its threads included)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _tree_cpu_s() -> float:
    # Our own CPU, our reaped children's, and every live descendant's (with the children
    # they reaped, e.g. PostgreSQL backends reaped by the postmaster): each counted once.
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue  # exited between listing and reading; its CPU goes to its parent
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _machine_busy_s() -> float:
    # Linux counts guest time inside user time: leave it out so it is not counted twice.
    # Steal time stays in: CPU the hypervisor gave to someone else was not ours either.
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


@dataclass(frozen=True)
class Usage:
    """CPU over a stretch of wall time, in core-seconds."""

    wall_s: float
    bench_s: float  # the bench and its children (servers, workers, broker, PostgreSQL)
    other_s: float  # everything else on the machine

    @property
    def other_share(self) -> float:
        """The fraction of the machine's capacity that other programs used."""
        capacity = self.wall_s * (psutil.cpu_count() or 1)
        return self.other_s / capacity if capacity else 0.0

    def note(self, what: str) -> str | None:
        """A warning for the report when other programs took a noticeable share."""
        if self.other_share < 0.05:
            return None
        return (
            f"{what}: other programs (or the hypervisor) used {100 * self.other_share:.0f} % "
            "of the machine's CPU "
            f"({self.other_s:.0f} core-seconds in {self.wall_s:.0f} s) during these "
            "measurements: the run was disturbed, compare ratios rather than absolute values"
        )


class CpuWatch:
    """Start it, do work, read ``usage()``."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._bench = _tree_cpu_s()
        self._busy = _machine_busy_s()

    def usage(self) -> Usage:
        wall = time.monotonic() - self._wall
        bench = _tree_cpu_s() - self._bench
        busy = _machine_busy_s() - self._busy
        return Usage(wall, bench, max(0.0, busy - bench))
