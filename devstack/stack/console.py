"""Console output of `mmctl run` that survives its reader going away (`mmctl run | head -1`,
a `| tee` killed by the same Ctrl-C): a closed stdout must never keep the supervisor from
stopping what it started."""

from __future__ import annotations

import os
import sys


def say(text: str, end: str = "\n") -> bool:
    """Write ``text`` and flush; False once stdout is gone (later output is discarded)."""
    try:
        sys.stdout.write(text + end)
        sys.stdout.flush()
        return True
    except (OSError, ValueError):  # BrokenPipeError, EIO of a hung-up terminal, a closed stream
        try:
            # Send what is left to /dev/null, so the interpreter's last flush cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        return False
