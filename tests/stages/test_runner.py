"""The stage runner's ordering rules, without a broker: a stand-in for the Faust stream
records what was acknowledged and when (stages/runner.py)."""

from __future__ import annotations

import asyncio

import pytest

from stages.runner import EarlierTakeFailed, InOrder, StageRunner


class Stream:
    """What the runner uses of a Faust stream: ``noack_take`` and ``ack``."""

    def __init__(self, takes: list[list[str]]) -> None:
        self.takes = takes
        self.acked: list[str] = []
        self.asked: list[tuple[int, float]] = []

    async def noack_take(self, max_: int, within: float):
        self.asked.append((max_, within))
        for take in self.takes:
            yield take
            await asyncio.sleep(0)

    async def ack(self, event: str) -> None:
        self.acked.append(event)


class Fatal(Exception):
    pass


def stopped(what: str) -> None:
    """Stands in for the process exit of stages.runner.fatal."""
    raise Fatal(what)


def runner(handle, *, in_flight: int = 1, prepare=None, on_fatal=stopped) -> StageRunner:
    return StageRunner(
        "stage.test",
        handle,
        take=3,
        within_s=0.25,
        in_flight=in_flight,
        convert=lambda e: e.upper(),
        prepare=prepare,
        on_fatal=on_fatal,
    )


def test_a_take_is_acknowledged_only_after_its_handling_returned_and_in_take_order():
    stream = Stream([["a", "b"], ["c"]])
    seen: list[tuple[list[str], list[str]]] = []

    async def handle(records):
        seen.append((records, list(stream.acked)))  # what was acknowledged before handling

    asyncio.run(runner(handle).run(stream))
    assert seen == [(["A", "B"], []), (["C"], ["a", "b"])]
    assert stream.acked == ["a", "b", "c"]
    assert stream.asked == [(3, 0.25)]


def test_a_failing_take_stops_the_process_and_is_not_acknowledged():
    stream = Stream([["a"], ["b"], ["c"]])

    async def handle(records):
        if records == ["B"]:
            raise ConnectionError("database down")

    with pytest.raises(Fatal, match="stage.test"):
        asyncio.run(runner(handle).run(stream))
    assert stream.acked == ["a"]


def test_a_failing_preparation_stops_before_anything_is_taken():
    stream = Stream([["a"]])

    async def prepare():
        raise RuntimeError("schema registry refused")

    async def handle(records):
        raise AssertionError("not reached")

    with pytest.raises(Fatal):
        asyncio.run(runner(handle, prepare=prepare).run(stream))
    assert stream.asked == [] and stream.acked == []


def test_overlapped_takes_acknowledge_in_take_order_whichever_finishes_first():
    stream = Stream([["a1", "a2"], ["b1"], ["c1"]])
    release_first = asyncio.Event
    order: list[str] = []

    async def scenario():
        first_may_end = release_first()

        async def handle(records):
            if records == ["A1", "A2"]:
                await first_may_end.wait()
            order.append(records[0])
            if records == ["B1"]:
                # The second take is done while the first is still open: nothing of it may be
                # acknowledged yet (an offset acknowledged past an open one can be committed).
                assert stream.acked == []
                first_may_end.set()

        await runner(handle, in_flight=3).run(stream)

    asyncio.run(scenario())
    assert order[0] == "B1"
    assert stream.acked == ["a1", "a2", "b1", "c1"]


def test_overlapped_takes_are_bounded_by_in_flight():
    stream = Stream([[str(i)] for i in range(6)])
    running = 0
    most = 0

    async def handle(records):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)
        running -= 1

    asyncio.run(runner(handle, in_flight=2).run(stream))
    assert most == 2
    assert stream.acked == [str(i) for i in range(6)]


def test_when_an_overlapped_take_fails_neither_it_nor_any_later_take_is_acknowledged():
    stream = Stream([["a"], ["b"], ["c"]])
    fatal: list[str] = []

    async def scenario():
        b_failed = asyncio.Event()

        async def handle(records):
            if records == ["A"]:
                await b_failed.wait()  # the earlier take is still open when the later fails
            if records == ["B"]:
                b_failed.set()
                raise ConnectionError("broker down")

        await runner(handle, in_flight=3, on_fatal=fatal.append).run(stream)

    asyncio.run(scenario())
    assert fatal == ["stage.test"]
    # (The process would have exited here; whether the earlier take got acknowledged first
    # does not matter.) The failed take and every later one replay.
    assert "b" not in stream.acked and "c" not in stream.acked


def test_shutdown_passes_through_without_fail_stop_or_acknowledgement():
    stream = Stream([["a"]])
    fatal: list[str] = []

    async def handle(records):
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(runner(handle, on_fatal=fatal.append).run(stream))
    assert fatal == [] and stream.acked == []


def test_in_flight_must_be_positive():
    with pytest.raises(ValueError, match="in_flight"):
        runner(lambda records: None, in_flight=0)


# -- InOrder: a phase that calls pass in the order they took their turn (the entity sink stores
# one batch while it publishes the one before, each phase in take order).


def test_turns_pass_in_the_order_they_were_taken_whichever_call_is_ready_first():
    passed: list[str] = []

    async def call(phase: InOrder, name: str, ready: asyncio.Event) -> None:
        turn = phase.take()
        await ready.wait()
        async with turn:
            await asyncio.sleep(0)
            passed.append(name)

    async def scenario():
        phase = InOrder()
        first_ready, second_ready = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(call(phase, "first", first_ready))
        second = asyncio.create_task(call(phase, "second", second_ready))
        await asyncio.sleep(0)  # both took their turn
        second_ready.set()  # the later call is ready first ...
        await asyncio.sleep(0.01)
        assert passed == []  # ... and waits for the earlier one
        first_ready.set()
        await asyncio.gather(first, second)

    asyncio.run(scenario())
    assert passed == ["first", "second"]


def test_a_failed_turn_fails_every_later_turn_and_an_abandoned_one_too():
    async def scenario():
        phase = InOrder()
        failing, waiting, abandoned, after = phase.take(), phase.take(), phase.take(), phase.take()
        with pytest.raises(ConnectionError):
            async with failing:
                raise ConnectionError("database down")
        with pytest.raises(EarlierTakeFailed):
            async with waiting:
                pass
        abandoned.abandon()
        with pytest.raises(EarlierTakeFailed):
            async with after:
                pass
        fresh = InOrder()
        given_up, next_one = fresh.take(), fresh.take()
        given_up.abandon()  # the call failed before its turn (its store phase)
        with pytest.raises(EarlierTakeFailed):
            async with next_one:
                pass

    asyncio.run(scenario())
