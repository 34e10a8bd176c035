"""Injected failures: what the admin endpoint accepts and which calls they hit, and storms
(a mix of faults on a share of all calls for a while)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field


@dataclass
class Fault:
    """An injected failure: the next ``times`` matching calls answer ``status``/``error``.

    A status below 400 makes a "slow" fault instead: the call executes, then its answer is
    held for ``delay_s`` (the client times out although the write happened).
    """

    method: str = "*"
    status: int = 500
    error: str = "INTERNAL_SERVER_ERROR"
    description: str = "Internal server error"
    times: int = 1
    delay_s: float = 0.0
    xml_id: str | None = None
    reset_in_s: float = 1.0
    #: Only calls about this entity id (``id`` / ``ID`` / ``taskId``): one command of a batch.
    entity_id: str | None = None

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        """Whether a call of ``method`` (lower case) with ``params`` triggers this fault."""
        if self.method != "*" and self.method.lower() != method:
            return False
        if self.entity_id is not None and self.entity_id not in _ids_of(params):
            return False
        return self.xml_id is None or self.xml_id in _xml_ids_of(params)


class FaultSpec(BaseModel):
    """Body of ``POST /_emulator/faults``."""

    method: str = "*"
    status: int = Field(500, ge=100, le=599)
    error: str = "INTERNAL_SERVER_ERROR"
    description: str = "Internal server error"
    times: int = Field(1, ge=1)
    delay_s: float = Field(0.0, ge=0)
    xml_id: str | None = None
    # Only for OPERATION_TIME_LIMIT: seconds until the time.operating_reset_at it reports.
    reset_in_s: float = Field(1.0, ge=0)
    entity_id: str | None = None


def take_fault(faults: list[Fault], method: str, params: dict[str, Any]) -> Fault | None:
    """The first fault matching the call, with one of its uses spent (and gone at zero)."""
    for fault in faults:
        if fault.matches(method, params):
            fault.times -= 1
            if fault.times <= 0:
                faults.remove(fault)
            return fault
    return None


def _xml_ids_of(params: dict[str, Any]) -> set[str]:
    found = set()
    for section in ("fields", "filter", "FIELDS", "FILTER"):
        block = params.get(section)
        if isinstance(block, dict):
            for key in ("xmlId", "XML_ID", "=xmlId", "=XML_ID"):
                if block.get(key) is not None:
                    found.add(str(block[key]))
    return found


def _ids_of(params: dict[str, Any]) -> set[str]:
    return {str(params[k]) for k in ("id", "ID", "taskId") if params.get(k) is not None}


# -- storms -------------------------------------------------------------------------------
# A storm hits a share of the calls to the emulated API with a random fault from a mix, for
# a while (``POST /_emulator/storm``). It works on the HTTP exchange itself (an ASGI
# middleware), so it can also drop a connection or hold an answer past the client's timeout.
# The 1С emulator uses the same machinery with its own error answers.
STORM_KINDS = (
    "query_limit",
    "operation_time_limit",
    "overload_limit",
    "server_error",
    "slow",
    "timeout",
    "reset",
    "reset_after_write",
)


class StormSpec(BaseModel):
    """Body of ``POST /_emulator/storm``: for ``duration_s``, a ``rate`` share of the calls
    answer with a fault drawn from ``mix`` (kind -> weight):

    - ``query_limit``, ``operation_time_limit``, ``overload_limit``, ``server_error``: the
      target's error answer (the 1С emulator answers 503 ``base_unavailable`` for the first
      three); nothing is executed;
    - ``slow``: the call waits ``slow_s``, then runs;
    - ``timeout``: the call runs, then its answer is held ``timeout_s`` (past the client's
      timeout: the write happened, the answer is lost);
    - ``reset``: the connection drops before anything runs;
    - ``reset_after_write``: the call runs, then the connection drops without the answer.
    """

    duration_s: float = Field(60.0, gt=0, le=3600)
    rate: float = Field(0.5, ge=0, le=1)
    mix: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(STORM_KINDS, 1.0))
    slow_s: float = Field(1.0, ge=0, le=60)
    timeout_s: float = Field(8.0, ge=0, le=120)
    seed: int | None = None

    def model_post_init(self, _context: Any) -> None:
        unknown = set(self.mix) - set(STORM_KINDS)
        if unknown or not any(w > 0 for w in self.mix.values()):
            raise ValueError(
                f"mix: weights of {', '.join(STORM_KINDS)} (unknown: {sorted(unknown)})"
            )


class Storm:
    """A running storm: which fault (if any) the next call gets, and what it dealt so far."""

    def __init__(self, spec: StormSpec, clock=time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self.until = clock() + spec.duration_s
        self._rng = random.Random(spec.seed)  # noqa: S311 — a test fault mix, not a secret
        self._kinds = [k for k, w in spec.mix.items() if w > 0]
        self._weights = [spec.mix[k] for k in self._kinds]
        self.hits: dict[str, int] = dict.fromkeys(self._kinds, 0)
        self.passed = 0

    def active(self) -> bool:
        return self._clock() < self.until

    def draw(self) -> str | None:
        """The fault for the next call, or None (it passes untouched)."""
        if not self.active() or self._rng.random() >= self.spec.rate:
            self.passed += 1
            return None
        kind = self._rng.choices(self._kinds, self._weights)[0]
        self.hits[kind] += 1
        return kind

    def status(self) -> dict[str, Any]:
        return {
            "active": self.active(),
            "remaining_s": max(0.0, self.until - self._clock()),
            "hits": dict(self.hits),
            "passed": self.passed,
            **self.spec.model_dump(),
        }


class ConnectionDropped(Exception):
    """Raised after an answer started: the server closes the connection mid-answer."""


#: kind -> (status, JSON body, headers) of an error answer; None for kinds not answered so.
ErrorAnswer = Callable[[str, str], "tuple[int, dict[str, Any], dict[str, str]] | None"]


class StormMiddleware:
    """Pure ASGI middleware applying the app's storm (``app.state.storm``) to requests
    whose path starts with ``prefix``; ``answer(kind, path)`` gives the error answers."""

    def __init__(self, app, *, prefix: str, answer: ErrorAnswer, holder) -> None:
        self.app = app
        self.prefix = prefix
        self.answer = answer
        self.holder = holder  # the FastAPI app's state, where the running storm lives

    async def __call__(self, scope, receive, send) -> None:
        storm: Storm | None = getattr(self.holder, "storm", None)
        if scope["type"] != "http" or storm is None or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        kind = storm.draw()
        # For the emulators' call logs (request.state.storm): which calls the storm hit.
        scope.setdefault("state", {})["storm"] = kind
        if kind is None:
            await self.app(scope, receive, send)
        elif kind == "slow":
            await asyncio.sleep(storm.spec.slow_s)
            await self.app(scope, receive, send)
        elif kind == "reset":
            await _drop(send)
        elif kind in ("timeout", "reset_after_write"):
            held: list[dict] = []

            async def keep(message) -> None:
                held.append(message)

            await self.app(scope, receive, keep)
            if kind == "reset_after_write":
                await _drop(send)
            await asyncio.sleep(storm.spec.timeout_s)
            for message in held:
                await send(message)
        else:
            status, body, headers = self.answer(kind, scope["path"])
            raw = json.dumps(body).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(raw)).encode()),
                        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": raw})


async def _drop(send) -> None:
    # ASGI has no "close the socket": a server closes the connection when the app fails
    # after the answer started, so the client sees the connection end without an answer.
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
    )
    raise ConnectionDropped("storm: connection dropped")


def bitrix24_storm_answer(kind: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The portal's error answers for the storm's error kinds."""
    if kind == "query_limit":
        return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, {}
    if kind == "operation_time_limit":
        now = time.time()
        return (
            429,
            {
                "error": "OPERATION_TIME_LIMIT",
                "error_description": "Method is blocked due to operation time limit.",
                "time": {
                    "start": now,
                    "finish": now,
                    "duration": 0,
                    "processing": 0,
                    "operating": 480,
                    "operating_reset_at": int(now + 1),
                    "date_start": "",
                    "date_finish": "",
                },
            },
            {},
        )
    if kind == "overload_limit":
        return (
            503,
            {
                "error": "OVERLOAD_LIMIT",
                "error_description": "REST API is blocked due to overload.",
            },
            {},
        )
    return 500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}, {}
