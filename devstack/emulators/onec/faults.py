"""Injected failures of the 1С emulator and its call log (``/_emulator/faults``, ``/_emulator/calls``).

A fault hits requests of one interface (``odata`` reads and ``/Post``, ``hs`` the HTTP
service, ``*`` both) and optionally one operation (``odata_get``, ``odata_create``,
``odata_patch``, ``odata_post``, ``instant_order``, ``delivery_status``, …). ``after`` matching requests pass first; then
the next ``count`` (-1: all) are hit:

- ``delay_s`` alone: latency — the request waits, then runs normally (a client timing out
  meanwhile loses an answer for a write that still happens);
- ``status``: the request fails with that status (and ``code``, ``message``,
  ``retry_after``) and writes nothing;
- ``after_write``: the request runs, then its answer is held ``delay_s`` (a timeout after a
  successful write, the case idempotency keys exist for); on the OData writes (create,
  patch, ``/Post``) a ``status`` with it replaces the answer after the write — a gateway
  losing 1С's answer, the case look-before-create exists for.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

Interface = Literal["odata", "hs", "*"]

# What 1С (or the web server in front of it) answers per status when a fault names no code.
DEFAULT_CODES = {
    400: "validation_failed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "object_locked",
    423: "base_locked",
    429: "base_unavailable",
    503: "base_unavailable",
}


class FaultSpec(BaseModel):
    """Body of ``POST /_emulator/faults``."""

    target: Interface = "*"
    operation: str = "*"
    status: int | None = Field(None, ge=400, le=599)
    code: str | None = None
    message: str | None = None
    retry_after: float | None = Field(None, ge=0)
    delay_s: float = Field(0.0, ge=0)
    after_write: bool = False
    count: int = Field(1, ge=-1)
    after: int = Field(0, ge=0)


@dataclass
class Fault:
    """One injected failure (see the module docstring)."""

    target: Interface = "*"
    operation: str = "*"
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    after_write: bool = False
    count: int = 1
    after: int = 0

    def matches(self, interface: str, operation: str) -> bool:
        """Whether a request of ``interface`` / ``operation`` is one this fault watches."""
        return self.target in ("*", interface) and self.operation in ("*", operation)

    def error_code(self) -> str:
        """The contract's error code this fault answers with."""
        return self.code or DEFAULT_CODES.get(self.status or 500, "internal_error")

    def retry_after_header(self) -> dict[str, str]:
        """Retry-After for the answer: as set, else 1 s for a busy or locked base."""
        seconds = self.retry_after
        if seconds is None and self.status in (423, 503):
            seconds = 1
        return {} if seconds is None else {"Retry-After": str(int(round(seconds)))}


def take_fault(faults: list[Fault], interface: str, operation: str) -> Fault | None:
    """The first fault hitting this request, with one use spent (gone when used up)."""
    for fault in faults:
        if not fault.matches(interface, operation):
            continue
        if fault.after > 0:
            fault.after -= 1
            return None
        if fault.count > 0:
            fault.count -= 1
            if fault.count == 0:
                faults.remove(fault)
        return fault
    return None


def onec_storm_answer(kind: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The base's error answers for a storm's error kinds (see the Bitrix24 emulator's
    ``StormSpec``): a busy or overloaded base is a 503 ``base_unavailable`` with Retry-After
    in the HTTP service's shape, or an OData error on the standard interface."""
    status, code, text = (
        (500, "internal_error", "Ошибка сервера (эмулятор)")
        if kind == "server_error"
        else (503, "base_unavailable", "База временно недоступна (эмулятор)")
    )
    headers = {"Retry-After": "1"} if status == 503 else {}
    if "/odata/" in path:
        return (
            status,
            {"odata.error": {"code": "-1", "message": {"lang": "ru", "value": text}}},
            headers,
        )
    return status, {"error": {"code": code, "message": text}}, headers


class CallLog:
    """The last requests the emulator served, newest last (bounded: ``make run`` runs long)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._calls: deque[dict[str, Any]] = deque(maxlen=limit)

    def record(
        self, interface: str, operation: str, method: str, path: str, status: int, **extra: Any
    ) -> None:
        """Append one served request."""
        self._calls.append(
            {
                "ts": time.time(),
                "interface": interface,
                "operation": operation,
                "method": method,
                "path": path,
                "status": status,
                **extra,
            }
        )

    def list(
        self, *, interface: str | None = None, operation: str | None = None
    ) -> list[dict[str, Any]]:
        """The recorded requests, optionally of one interface / operation."""
        return [
            c
            for c in self._calls
            if (interface is None or c["interface"] == interface)
            and (operation is None or c["operation"] == operation)
        ]

    def clear(self) -> int:
        """Forget every recorded request; how many there were."""
        count = len(self._calls)
        self._calls.clear()
        return count
