"""Waiting out our own dependencies (database, broker) without giving up on the record.

A database or broker outage is not the record's fault: the batch is retried until the
dependency is back, never dead-lettered. Permanent errors are raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mmstream.errors import classify
from mmstream.metrics import SINK_RETRIES

T = TypeVar("T")
log = logging.getLogger(__name__)


async def retry_transient(op: Callable[[], Awaitable[T]], *, what: str, entity: str,
                          base_s: float = 0.2, max_s: float = 10.0) -> T:
    """Run ``op`` until it succeeds or fails permanently (that error is raised)."""
    attempt = 0
    while True:
        try:
            return await op()
        except Exception as exc:  # noqa: BLE001 — classify decides
            err = classify(exc)
            if not err.retriable:
                raise
            attempt += 1
            SINK_RETRIES.labels(entity, err.code).inc()
            delay = random.uniform(0, min(max_s, base_s * 2 ** min(attempt, 16)))  # noqa: S311 — jitter
            log.warning("%s failed, retrying", what,
                        extra={"error_code": err.code, "error": str(err), "attempt": attempt,
                               "retry_in_s": round(delay, 2)})
            await asyncio.sleep(delay)
