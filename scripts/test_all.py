"""`make test`: every test once, as two pytest sessions side by side.

The end-to-end tier spends most of its time waiting on processes it started (a bridge, workers,
emulators settling), not on the CPU; run one after the other, the suite took ~30 minutes on a
2-core machine. Each session starts its own broker and PostgreSQL on free ports (the harness
allocates them), so the two never share state. The other tiers' output streams to the terminal;
the end-to-end session's goes to `.test-logs/e2e.log` and is printed when both are done.
Exit status: the worse of the two (0 only when both passed).

With arguments (``make test ARGS=tests/x.py``) it is one plain pytest session.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / ".test-logs"


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest"]
    if argv:
        return subprocess.call([*pytest, *argv], cwd=REPO)
    LOGS.mkdir(exist_ok=True)
    e2e_log = LOGS / "e2e.log"
    started = time.monotonic()
    with e2e_log.open("w") as out:
        # -p no:cacheprovider: two sessions must not write .pytest_cache at the same time.
        e2e = subprocess.Popen(
            [*pytest, "-p", "no:cacheprovider", "-m", "e2e"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            rest = subprocess.call([*pytest, "-p", "no:cacheprovider", "-m", "not e2e"], cwd=REPO)
            e2e_code = e2e.wait()
        except BaseException:
            e2e.terminate()
            e2e.wait()
            raise
    print(f"\n===== end-to-end tier (log: {e2e_log.relative_to(REPO)}) =====", flush=True)
    sys.stdout.write(e2e_log.read_text(errors="replace"))
    took = time.monotonic() - started
    verdict = "passed" if rest == 0 and e2e_code == 0 else "FAILED"
    print(
        f"\n===== make test {verdict}: other tiers exit {rest}, end-to-end exit {e2e_code}, "
        f"{took / 60:.1f} min wall =====",
        flush=True,
    )
    # pytest's 5 (no tests collected) would be a wiring error here, not a pass.
    return max(rest, e2e_code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
