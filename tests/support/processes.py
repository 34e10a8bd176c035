"""Child processes of a test (bridge, workers, emulators): start, wait, kill, logs."""

from __future__ import annotations

import time

# The tests start their processes with the one launcher, as `mmctl run` and the benchmarks do:
# an mmctl child with its own log file, killed with the test session.
from devstack.process import Child as Proc  # noqa: F401 — re-exported for the tests
from devstack.process import wait_ready as wait_http  # noqa: F401 — re-exported for the tests


def eventually(check, timeout_s: float = 60.0, interval_s: float = 0.2, message: str = ""):
    """Poll ``check()`` until it returns a truthy value; return it, or fail with the last one."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s}s: {message} (last: {last!r})")
