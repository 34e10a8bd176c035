"""Fencing the egress leases: a worker that lost its entity's lease never writes to the target.

A delivery holds its entity's lease row (``egress_lease``, stages/egress/delivery.py). The
row's ``holder`` is a fencing token: a fresh uuid on every take, so a takeover by another
worker (after the lease expired) changes it. The holder keeps its token in a
:class:`Fence` and it is checked

* **just before every write to a target** (:func:`guard_write`): the lease row is confirmed
  (and extended) in the database by ``target, entity, entity_id AND holder``; 0 rows — the
  lease was taken — raises :class:`LeaseLost`. When the database does not answer in time the
  write goes ahead only if the lease as last confirmed still outlasts the write (local
  monotonic clock, started *before* the confirming statement was sent, so it never
  overestimates the database's ``expires_at``);
* **in the transaction that records the delivery** (and in the one that parks a change):
  0 rows there rolls the record back; the change is left to the new holder;
* **by the renewals**: a renewal that finds the lease gone, or that cannot renew before the
  lease runs out, fences the delivery and cancels its action in flight.

The window that remains (said plainly): a request already on the wire cannot be recalled.
A Bitrix24 write is checked before it is handed to the ``batch`` packer; the packer does
not send it after its *send-by* time (``connectors.bitrix24.batch.SEND_BY``), which is
``margin + write timeout`` before the lease's end, and the egress client's HTTP timeout is
capped at the write timeout. So a write that is sent lands (or times out) before the lease
ends, as long as the wait for the portal's request budget between packing and sending stays
below ``margin`` (a fifth of the lease: 3 s by default; the budget normally hands a slot to
one of the two batches in flight within 1/rate s). A process frozen (SIGSTOP, a VM pause)
between the last check and the send is not covered by any lease scheme; the record's
fencing then still keeps its late write from being recorded, and the next holder's
delivery rewrites the newest change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors.bitrix24.batch import SEND_BY, SendDeadlinePassed
from connectors.bitrix24.client import Bitrix24Client
from mmstream.settings import Settings

log = logging.getLogger(__name__)

#: Method name endings of Bitrix24 calls that only read (no fence check needed for them).
_READS = ("list", "get", "fields", "search")


class LeaseLost(Exception):  # noqa: N818 — a state, like asyncio's CancelledError
    """The delivery's lease was taken over (or may be, before its write would end): the
    delivery writes nothing more and starts over; the new holder delivers the change."""


@dataclass(eq=False)
class Fence:
    """A delivery's hold on its entity's lease: the token and how long it is known to last."""

    #: target, entity, id, holder (the token), ttl: the lease row's key and token.
    params: dict[str, Any]
    #: Until when (event loop clock) the database holds the lease for us at least.
    valid_until: float
    #: The longest a target write may take (the egress clients' timeout).
    write_timeout_s: float
    #: Slack for what happens between the check and the send (a budget wait, a confirm).
    margin_s: float
    #: Confirms and extends the lease in the database: True held, False taken over.
    confirm: Callable[[Fence], Awaitable[bool]] | None = None
    fenced: str | None = None
    #: The action in flight (cancelled when the lease is lost).
    task: asyncio.Task[Any] | None = field(default=None, repr=False)

    def remaining(self) -> float:
        """Seconds the lease is known to last still."""
        return self.valid_until - asyncio.get_running_loop().time()

    def renewed(self, started: float) -> None:
        """A statement sent at ``started`` (loop clock) confirmed the lease for its ttl."""
        self.valid_until = max(self.valid_until, started + float(self.params["ttl"]))

    def fence(self, reason: str) -> None:
        """The lease is lost (or about to be): no more writes; cancel the action in flight."""
        if self.fenced is None:
            self.fenced = reason
            log.warning(
                "egress lease lost, delivery fenced",
                extra={
                    "entity": self.params.get("entity"),
                    "entity_id": self.params.get("id"),
                    "reason": reason,
                },
            )
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def raise_if_fenced(self) -> None:
        """:class:`LeaseLost` once the delivery is fenced."""
        if self.fenced is not None:
            raise LeaseLost(self.fenced)

    def send_by(self) -> float:
        """The last moment (loop clock) a write may leave so it ends inside the lease."""
        return self.valid_until - self.margin_s - self.write_timeout_s

    def check_window(self) -> None:
        """:class:`LeaseLost` unless a write started now would end inside the lease."""
        self.raise_if_fenced()
        if self.remaining() < self.write_timeout_s + self.margin_s:
            self.fence(
                f"lease ends in {self.remaining():.1f} s, too soon for a write "
                f"(timeout {self.write_timeout_s:.1f} s)"
            )
            raise LeaseLost(self.fenced)


#: The fence of the delivery running in this task (set while a delivery holds its lease).
CURRENT: ContextVar[Fence | None] = ContextVar("egress_fence", default=None)


async def guard_write(what: str) -> Fence | None:
    """Check the current delivery's lease just before a write (see the module docstring);
    :class:`LeaseLost` when it must not write. None outside a delivery (nothing to fence)."""
    fence = CURRENT.get()
    if fence is None:
        return None
    fence.raise_if_fenced()
    if fence.confirm is not None:
        try:
            held = await fence.confirm(fence)
        except Exception as exc:  # noqa: BLE001 — the local deadline still decides below
            log.warning(
                "egress lease not confirmed before a write; relying on its last renewal",
                extra={
                    "what": what,
                    "error": str(exc)[:200],
                    "remaining_s": round(fence.remaining(), 2),
                },
            )
        else:
            if not held:
                fence.fence(f"lease taken over before {what}")
                raise LeaseLost(fence.fenced)
    fence.check_window()
    return fence


def is_write(method: str, params: dict[str, Any] | None) -> bool:
    """Whether a Bitrix24 call may change the portal (a ``batch`` when any command may)."""
    if method.lower() == "batch":
        commands = (params or {}).get("cmd") or {}
        texts = commands.values() if isinstance(commands, dict) else commands
        return any(is_write(str(text).partition("?")[0], None) for text in texts)
    return method.lower().rsplit(".", 1)[-1] not in _READS


class FencedBitrix24Client(Bitrix24Client):
    """The egress worker's Bitrix24 client: every write is checked against the delivery's
    lease before it is handed to the ``batch`` packer, and is not sent after its send-by
    time (see the module docstring)."""

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if not is_write(method, params):
            return await super().call(method, params)
        fence = await guard_write(method)
        if fence is None:
            return await super().call(method, params)
        token = SEND_BY.set(fence.send_by())
        try:
            return await super().call(method, params)
        except SendDeadlinePassed as exc:
            fence.fence(f"{method} not sent before the lease's send-by time")
            raise LeaseLost(fence.fenced) from exc
        finally:
            SEND_BY.reset(token)


class FencedTransport(httpx.AsyncBaseTransport):
    """Checks the delivery's lease before each write request (1С: its calls are never
    packed, so they run in the delivery's own task and see its fence)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await guard_write(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = [
    "CURRENT",
    "Fence",
    "FencedBitrix24Client",
    "FencedTransport",
    "LeaseLost",
    "guard_write",
    "is_write",
    "lease_engine",
]


def lease_engine(settings: Settings) -> AsyncEngine:
    """The engine of the lease statements (renewals, confirmations before writes): waiting
    for a connection, connecting and each statement are bounded by a fifth of the lease, so
    a lease operation ends (or fails) long before the lease it protects."""
    bound = settings.retry.delivery_lease_s / 5
    size = settings.streams.egress_db_pool
    return create_async_engine(
        settings.require_database_url(),
        pool_size=size,
        max_overflow=size,
        pool_timeout=bound,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": max(2, int(bound)),
            "options": f"-c statement_timeout={int(bound * 1000)}",
        },
    )
