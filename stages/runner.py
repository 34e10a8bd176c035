"""The one stage runner: the only code that decides when a worker's offsets are committed.

Every Faust worker (entity sink, enrichment, egress) reads its source the same way:

1. take a batch (``noack_take``: Faust commits acknowledged offsets only);
2. hand it to the stage (``handle``), which returns only when every effect of the batch is
   durable (database commit, produced records and DLQ records acknowledged by the broker);
   what is a record's fault the stage dead-letters itself (design.md invariant 9);
3. acknowledge the batch's events, takes in take order: Faust commits acknowledged offsets
   as a run, and an offset acknowledged while an earlier one is still open can be committed
   past it (faust-streaming 0.15 only checks for a head gap of more than one offset).

An error that reaches the runner is the infrastructure's (database, broker, settings; see
``mmstream.errors.dead_letterable``) or a bug: the process stops at once without
acknowledging (fail-stop), so whoever owns the partition next replays the batch. Shutdown
signals (cancellation) pass through and leave the open takes unacknowledged too.

With ``in_flight`` > 1 a new take starts while earlier ones are still being handled (the
egress overlaps takes so a draining take's last deliveries do not leave the target idle);
acknowledgements still go in take order. The ordering rules are unit-tested without a broker
(tests/stages/test_runner.py) against a stand-in for the Faust stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from mmstream import metrics
from mmstream.errors import classify

log = logging.getLogger(__name__)
EXIT_FATAL = 70
T = TypeVar("T")


def is_shutdown(exc: BaseException) -> bool:
    """True for the exceptions that mean "stop", not "failed"."""
    return isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt, SystemExit))


def fatal(what: str) -> None:
    """Log the current exception and end the process at once (fail-stop, no ack).

    Stages dead-letter what is a record's fault (design.md invariant 9); what reaches here
    is the database's, the broker's or the settings' (``error_code`` says which) or a bug."""
    exc = sys.exc_info()[1]
    log.critical(
        "unhandled error in %s: exiting so the batch is replayed",
        what,
        exc_info=True,
        extra={"error_code": classify(exc).code if exc is not None else "unknown"},
    )
    logging.shutdown()
    os._exit(EXIT_FATAL)


@asynccontextmanager
async def fail_stop(what: str, on_fatal: Callable[[str], None] = fatal) -> AsyncIterator[None]:
    """Run an agent's body: an error it does not handle ends the process (see :func:`fatal`)
    instead of acknowledging a half-done batch; shutdown signals pass through."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 — everything but shutdown is fatal here
        if is_shutdown(exc):
            raise
        on_fatal(what)
        raise  # only reached when on_fatal returns (tests)


class Stream(Protocol):
    """What the runner uses of a Faust stream."""

    def noack_take(self, max_: int, within: float) -> AsyncIterator[Sequence[Any]]: ...

    async def ack(self, event: Any) -> Any: ...


class Once(Generic[T]):
    """A typed dependency container built once, on first use (the first batch, or the first
    timer tick), so that building the app connects to nothing."""

    def __init__(self, build: Callable[[], Awaitable[T]]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        if self._value is None:
            async with self._lock:
                if self._value is None:
                    self._value = await self._build()
        return self._value

    def peek(self) -> T | None:
        """The value when it was built already (timers that must not build it)."""
        return self._value


@dataclass
class StageRunner:
    """Take, handle, acknowledge in take order; fail-stop on what the stage raises.

    ``handle`` gets the converted records of one take (``convert`` maps a Faust event to
    what the stage reads; by default :meth:`SourceRecord.from_event`)."""

    name: str
    handle: Callable[[list[Any]], Awaitable[object]]
    take: int
    within_s: float
    in_flight: int = 1
    convert: Callable[[Any], Any] | None = None
    prepare: Callable[[], Awaitable[object]] | None = None
    on_fatal: Callable[[str], None] = field(default=fatal)

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        if self.convert is None:
            from stages.source_record import SourceRecord

            self.convert = SourceRecord.from_event

    async def run(self, stream: Stream) -> None:
        """The agent's body: runs until the stream ends or the agent is cancelled."""
        async with fail_stop(self.name, self.on_fatal):
            if self.prepare is not None:
                await self.prepare()
            if self.in_flight == 1:
                async for events in stream.noack_take(self.take, within=self.within_s):
                    await self._handle(events)
                    await _ack_all(stream, events)
                return
            await self._run_overlapped(stream)

    async def _handle(self, events: Sequence[Any]) -> None:
        with metrics.observe_batch(self.name, len(events)):
            await self.handle([self.convert(e) for e in events])  # type: ignore[misc]

    async def _run_overlapped(self, stream: Stream) -> None:
        slots = asyncio.Semaphore(self.in_flight)
        running: set[asyncio.Task] = set()
        acks = InOrder()  # take order: an earlier take acknowledges first
        failed: list[BaseException] = []

        async def settle(events: Sequence[Any], ack_turn: _Turn) -> None:
            try:
                try:
                    await self._handle(events)
                except BaseException:
                    # The takes after this one wait for it: they must not acknowledge either.
                    ack_turn.abandon()
                    raise
                async with ack_turn:
                    await _ack_all(stream, events)
            except BaseException as exc:  # noqa: BLE001 — as fail_stop, off the agent
                if is_shutdown(exc):
                    raise
                if not isinstance(exc, EarlierTakeFailed):
                    failed.append(exc)
                    self.on_fatal(self.name)
            finally:
                slots.release()

        try:
            async for events in stream.noack_take(self.take, within=self.within_s):
                await slots.acquire()
                if failed:  # on_fatal returned (tests): nothing after a failure is handled
                    return
                task = asyncio.create_task(settle(events, acks.take()))
                running.add(task)
                task.add_done_callback(running.discard)
            # The stream ended: the takes in flight finish (and acknowledge) first.
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        finally:
            for task in running:  # shutdown: unacknowledged takes are replayed
                task.cancel()


class InOrder:
    """A phase that calls pass through one at a time, in the order they took their turn.

    ``take()`` (synchronous: call it before the first ``await`` of the call, so turns follow
    the order the calls started in) returns the turn; ``async with turn:`` waits for the
    turn taken before to end. A turn that ends with an error fails every later turn that
    waits on it (:class:`EarlierTakeFailed`): nothing after a failed batch goes ahead."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def take(self) -> _Turn:
        before, self._last = self._last, asyncio.get_running_loop().create_future()
        return _Turn(before, self._last)


class _Turn:
    def __init__(self, before: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._before, self._mine = before, mine

    async def __aenter__(self) -> None:
        if self._before is not None:
            try:
                await asyncio.shield(self._before)
            except BaseException:
                self._end(EarlierTakeFailed())
                raise

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._end(None if exc is None else EarlierTakeFailed())

    def abandon(self) -> None:
        """End a turn that will never be entered (its call failed before): later turns fail."""
        self._end(EarlierTakeFailed())

    def _end(self, error: BaseException | None) -> None:
        if self._mine.done():
            return
        if error is None:
            self._mine.set_result(None)
        else:
            self._mine.set_exception(error)
            self._mine.add_done_callback(lambda f: f.exception())  # retrieved: no warning


class EarlierTakeFailed(Exception):
    """An earlier take failed: this one is left unacknowledged (replayed)."""


async def _ack_all(stream: Stream, events: Sequence[Any]) -> None:
    for event in events:
        await stream.ack(event)
