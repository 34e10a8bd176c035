"""Finding the records a batch statement failed for, without paying for it on the happy path.

A sink merges its whole batch in one transaction. When that fails for a record's data (the
database refused a value, the record could not be written), the batch is split in halves
and each half retried, down to the single records that fail alone: those are dead-lettered
and the rest is stored (design.md invariant 9). A good batch costs one transaction as
before; k bad records among n cost about 2·k·log2(n) more. Halves go in batch order, so
changes of one entity keep their order. Errors of the database or broker themselves are
raised (after ``retry_forever`` waited out the retriable ones): no record is
dead-lettered for them, the worker stops and the batch replays.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from mmstream.errors import dead_letterable
from mmstream.retry import retry_forever

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


async def store_isolating(
    items: Sequence[T], store: Callable[[list[T]], Awaitable[R]], *, what: str, entity: str
) -> tuple[list[R], list[tuple[T, BaseException]]]:
    """Run ``store`` over ``items`` (one call when it succeeds); returns the results of the
    calls that succeeded and the items that fail alone, each with its error."""
    results: list[R] = []
    bad: list[tuple[T, BaseException]] = []

    async def attempt(part: list[T]) -> None:
        try:
            results.append(
                await retry_forever(lambda: store(part), stage="sink", what=what, entity=entity)
            )
            return
        except Exception as exc:  # noqa: BLE001 — dead_letterable decides
            if not dead_letterable(exc):
                raise
            if len(part) == 1:
                bad.append((part[0], exc))
                return
            log.warning(
                "%s failed for a record's data; splitting the batch to find it",
                what,
                extra={"error": str(exc)[:500], "batch": len(part)},
            )
        mid = len(part) // 2
        await attempt(part[:mid])
        await attempt(part[mid:])

    await attempt(list(items))
    return results, bad
