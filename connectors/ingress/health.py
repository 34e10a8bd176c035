"""Readiness that never blocks the event loop and does not hammer the broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ReadinessCheck:
    """Runs a blocking probe in a thread; concurrent and repeated calls share one result
    for ``ttl_s`` so a probe storm during a Kafka outage costs one metadata request."""

    def __init__(self, probe: Callable[[], None], ttl_s: float = 2.0) -> None:
        self.probe = probe
        self.ttl_s = ttl_s
        self._at = float("-inf")
        self._reason: str | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> str | None:
        """None when ready, otherwise why not."""
        async with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                try:
                    await asyncio.to_thread(self.probe)
                    self._reason = None
                except Exception as exc:  # noqa: BLE001 — readiness reports any failure
                    self._reason = str(exc)
                self._at = time.monotonic()
            return self._reason
