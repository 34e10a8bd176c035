"""Packing commands into Bitrix24 ``batch`` calls and mapping the answers back per command.

One ``batch`` call carries up to 50 commands (``"method?query"`` strings, ``halt=0``) and
costs ONE request of the portal's budget, so packing is what makes 2 requests/s carry
100 operations/s. The answer is always HTTP 200; each command's outcome sits in
``result`` / ``result_error`` keyed by the command's name. But PHP encodes a map keyed
``0..n-1`` as a JSON list, and real answers show ``result_error`` as a LIST with empty codes
(fixtures ``crm_get_batch_*``), so an error cannot always be tied to its command. The
mapping here never guesses: a command without its own answer gets a classified error
only when the answer proves it failed and all candidate errors are of one class; else
:class:`UnmatchedCommand` (retriable). Only failed commands are worth re-running, and a
create is never re-run blindly: the egress actions look an entity up by its external key
before any ``add`` (stages/egress/bitrix24_master.py), so a create that executed without
our seeing it is found.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from connectors.bitrix24.errors import Bitrix24Error, error_from_response

log = logging.getLogger(__name__)

#: Commands per ``batch`` call that Bitrix24 accepts.
MAX_COMMANDS = 50
#: A submitter's send-by time (event loop clock): its command is not sent in a batch
#: formed later (a fenced egress write must not leave after its lease's safe end).
SEND_BY: ContextVar[float | None] = ContextVar("bitrix24_send_by", default=None)


class SendDeadlinePassed(TimeoutError):
    """The command was not sent: its send-by time passed while it waited to be packed."""


class BatchClient(Protocol):
    """What the packer needs of :class:`~connectors.bitrix24.client.Bitrix24Client`."""

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One REST call."""

    def observe(self, method: str, err: Bitrix24Error) -> None:
        """Let a per-command error steer the budget."""


class UnmatchedCommand(Bitrix24Error):
    """A ``batch`` answer holds no result for this command and no error that is provably
    its own (``result_error`` came as a list). Retriable: run it again on its own or, for a
    create, look the entity up by its external key first."""

    code = "bitrix24_batch_unmatched"
    retriable = True


@dataclass(frozen=True)
class Command:
    """One REST call to run inside a ``batch``."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The ``method?query`` string of the ``cmd`` map (PHP ``http_build_query``)."""
        query = encode_query(self.params)
        return f"{self.method}?{query}" if query else self.method


@dataclass(frozen=True)
class Ok:
    """The command succeeded; ``total``/``next`` for list methods."""

    result: Any
    total: int | None = None
    next: int | None = None


@dataclass(frozen=True)
class Failed:
    """The command failed; ``error.retriable`` says whether running it again may help."""

    error: Exception


Outcome = Ok | Failed


def encode_query(params: Mapping[str, Any]) -> str:
    """``params`` as PHP's ``http_build_query`` writes them: ``filter[xmlId]=…&select[0]=id``.

    None values are left out (as PHP does); booleans become 1/0; pass ``"Y"``/``"N"`` for
    Bitrix24's boolean fields.
    """
    pairs: list[tuple[str, str]] = []
    _flatten("", params, pairs)
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in pairs)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}[{k}]" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    elif value is None:
        return
    elif isinstance(value, bool):
        out.append((prefix, "1" if value else "0"))
    else:
        out.append((prefix, str(value)))


def map_results(answer: Any, commands: Mapping[str, Command]) -> dict[str, Outcome]:
    """The outcome of every command of a ``batch`` answer (the call's ``result``).

    ``commands`` maps the names sent in ``cmd`` to the commands; per-command errors are
    classified by :func:`~connectors.bitrix24.errors.error_from_response` (no HTTP status
    of their own: an empty code counts as a 400 refusal).
    """
    names = list(commands)
    if not isinstance(answer, dict):
        err = UnmatchedCommand(200, "", "batch answered without a result map", method="batch")
        return {name: Failed(err) for name in names}
    results = _section(answer.get("result"), names)
    totals = _section(answer.get("result_total"), names)
    nexts = _section(answer.get("result_next"), names)
    raw_errors = answer.get("result_error")
    out: dict[str, Outcome] = {}
    for name in names:
        if name in results:
            out[name] = Ok(results[name], _int(totals.get(name)), _int(nexts.get(name)))
    if isinstance(raw_errors, dict):
        for name in names:
            if name not in out and name in raw_errors:
                out[name] = Failed(_classify(raw_errors[name], commands[name].method))
        errors_left: list[Any] = []
    else:
        errors_left = list(raw_errors or [])
    missing = [name for name in names if name not in out]
    for name, outcome in _unmatched(missing, errors_left, commands).items():
        out[name] = outcome
    return out


def _section(section: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(section, dict):
        return {k: section[k] for k in names if k in section}
    if (
        isinstance(section, list)
        and section
        and names[: len(section)] == [str(i) for i in range(len(section))]
    ):
        # A JSON list is PHP's map keyed 0..m-1: it belongs to commands named "0".."m-1".
        return {str(i): v for i, v in enumerate(section)}
    return {}


def _unmatched(
    missing: list[str], errors: list[Any], commands: Mapping[str, Command]
) -> dict[str, Outcome]:
    if not missing:
        return {}
    classified = [_classify(e, commands[missing[0]].method) for e in errors]
    kinds = {type(e) for e in classified}
    if len(classified) == len(missing) and len(kinds) == 1:
        # As many errors as commands without a result: each of them failed, and all the
        # errors are of one class, so each command's class is known even though its own
        # text is not.
        texts = sorted({e.description or e.error for e in classified})
        cls = kinds.pop()
        out: dict[str, Outcome] = {}
        for name in missing:
            err = cls(
                None,
                classified[0].error,
                "one of: " + " | ".join(texts) if len(texts) > 1 else texts[0],
                method=commands[name].method,
            )
            # "Not found" only when every error says so: then it is this command's too.
            err.not_found = all(e.not_found for e in classified)
            out[name] = Failed(err)
        return out
    if errors:
        log.warning(
            "batch errors cannot be matched to commands",
            extra={"commands": len(missing), "errors": len(errors)},
        )
    texts = sorted({e.description or e.error for e in classified})
    detail = (
        "answer has no result for it; unmatched errors: " + " | ".join(texts)
        if texts
        else "answer has neither a result nor an error for it"
    )
    return {
        name: Failed(UnmatchedCommand(None, "", detail[:500], method=commands[name].method))
        for name in missing
    }


def _classify(raw: Any, method: str) -> Bitrix24Error:
    body = raw if isinstance(raw, dict) else {"error": "", "error_description": str(raw)}
    return error_from_response(400, body, method=method)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


async def execute(client: BatchClient, commands: Mapping[str, Command]) -> dict[str, Outcome]:
    """Run ``commands`` (any names) in ``batch`` calls of up to 50; the outcome per name.

    Never raises for Bitrix24 errors: a failed ``batch`` call (transport, 5xx, rate limit,
    open circuit) fails every command it carried with that error. References between
    commands (``$result[…]``) are not supported: commands are renamed on the wire.
    """
    names = list(commands)
    out: dict[str, Outcome] = {}
    for start in range(0, len(names), MAX_COMMANDS):
        chunk = names[start : start + MAX_COMMANDS]
        out.update(await _run_chunk(client, [commands[n] for n in chunk], chunk))
    return out


async def _run_chunk(
    client: BatchClient, commands: Sequence[Command], names: Sequence[str]
) -> dict[str, Outcome]:
    # Our own names on the wire: never numeric, so PHP keeps them as map keys.
    wire = {f"c{i}": command for i, command in enumerate(commands)}
    try:
        answer = await client.call(
            "batch", {"halt": 0, "cmd": {k: c.text() for k, c in wire.items()}}
        )
    except Exception as exc:  # noqa: BLE001 — the caller decides per command from its class
        return {name: Failed(exc) for name in names}
    mapped = map_results(answer, wire)
    out: dict[str, Outcome] = {}
    for (key, command), name in zip(wire.items(), names, strict=True):
        outcome = mapped[key]
        if isinstance(outcome, Failed) and isinstance(outcome.error, Bitrix24Error):
            client.observe(command.method, outcome.error)
        out[name] = outcome
    return out


class BatchPacker:
    """Packs commands submitted by concurrent coroutines into ``batch`` calls.

    ``await packer.submit(command)`` resolves to that command's outcome. A batch leaves when
    50 commands wait or ``linger_s`` after the first one; while a batch waits for the
    portal's budget, the next one fills up, so under the rate limit batches run full.
    """

    def __init__(
        self,
        client: BatchClient,
        *,
        linger_s: float = 0.05,
        max_in_flight: int = 2,
        max_commands: int = MAX_COMMANDS,
    ) -> None:
        if not 1 <= max_commands <= MAX_COMMANDS:
            raise ValueError(f"max_commands must be within 1..{MAX_COMMANDS}")
        self.client = client
        self.linger_s = linger_s
        self.max_commands = max_commands
        self._pending: list[tuple[Command, asyncio.Future[Outcome]]] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._loop_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._send_by: dict[asyncio.Future[Outcome], float] = {}

    async def submit(self, command: Command) -> Outcome:
        """Queue ``command``; its outcome once its batch answered."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if (send_by := SEND_BY.get()) is not None:
            self._send_by[future] = send_by
        self._pending.append((command, future))
        self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def aclose(self) -> None:
        """Stop packing; commands still queued fail with CancelledError."""
        if self._loop_task is not None:
            self._loop_task.cancel()
        for task in list(self._in_flight):
            task.cancel()
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._pending) < self.max_commands:
                await asyncio.sleep(self.linger_s)
            await self._slots.acquire()
            chunk, self._pending = (
                self._pending[: self.max_commands],
                self._pending[self.max_commands :],
            )
            if not self._pending:
                self._wake.clear()
            chunk = [entry for entry in chunk if self._sendable(entry[1])]
            if not chunk:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._flush(chunk))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _sendable(self, future: asyncio.Future[Outcome]) -> bool:
        """Whether a queued command still goes out: not when its submitter gave up
        (cancelled) or its send-by time passed."""
        send_by = self._send_by.pop(future, None)
        if future.done():
            return False
        if send_by is not None and asyncio.get_running_loop().time() > send_by:
            future.set_exception(SendDeadlinePassed("not sent: its send-by time passed"))
            return False
        return True

    async def _flush(self, chunk: list[tuple[Command, asyncio.Future[Outcome]]]) -> None:
        try:
            names = [str(i) for i in range(len(chunk))]
            outcomes = await _run_chunk(self.client, [c for c, _ in chunk], names)
            for name, (_, future) in zip(names, chunk, strict=True):
                if not future.done():
                    future.set_result(outcomes[name])
        except BaseException as exc:
            # A bug or a cancellation must not leave submitters waiting forever.
            for _, future in chunk:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, Exception) else asyncio.CancelledError()
                    )
            raise
        finally:
            self._slots.release()


__all__ = [
    "MAX_COMMANDS",
    "SEND_BY",
    "BatchPacker",
    "SendDeadlinePassed",
    "Command",
    "Failed",
    "Ok",
    "Outcome",
    "UnmatchedCommand",
    "encode_query",
    "execute",
    "map_results",
]
