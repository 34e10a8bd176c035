"""The trace headers an outbound call carries, from the bound log context.

The request id of the ingress request that produced a change travels with the record as its
``x-request-id`` Kafka header (mmstream/envelope.py, kept by the sink in the outbox
headers); egress binds it, with the event id (``ce_id``), to the log context of the
delivery (stages/egress/delivery.py). The egress clients' transport reads both from there.
"""

from __future__ import annotations

import contextvars
import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from mmstream import log as logctx

REQUEST_ID_HEADER = "X-Request-Id"
TRACEPARENT_HEADER = "traceparent"

# version-traceid-parentid-flags (W3C Trace Context level 1); all-zero ids are invalid.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def _digest(kind: str, value: str, chars: int) -> str:
    out = hashlib.sha256(f"mm-{kind}\x1f{value}".encode()).hexdigest()[:chars]
    # An all-zero id is invalid in W3C Trace Context; the chance is 2^-64, the rule costs nothing.
    return out if out.strip("0") else "1".rjust(chars, "0")


def valid_traceparent(value: str) -> bool:
    """True for a version-00 (or later) traceparent with non-zero ids."""
    m = _TRACEPARENT.match(value or "")
    return (
        m is not None
        and m.group(1) != "ff"
        and m.group(2) != _ZERO_TRACE
        and m.group(3) != _ZERO_SPAN
    )


def traceparent(event_id: str, request_id: str = "", upstream: str = "") -> str:
    """The ``traceparent`` of an outbound call made for event ``event_id``.

    An upstream trace (a valid ``upstream`` traceparent) keeps its trace id. Without one the
    trace id is derived from the event id, so every attempt to deliver one change — retries,
    replays, another worker after a rebalance — lands in the same trace, and the trace id
    can be recomputed from an event id alone (``mmctl trace``). Without an event id (an
    enrichment read) the request id stands in; with neither, a random trace.
    The parent (span) id names the delivery of this event: derived from the event id too.
    """
    seed = event_id or request_id
    if valid_traceparent(upstream):
        trace_id = upstream.split("-")[1]
    elif seed:
        trace_id = _digest("trace", seed, 32)
    else:
        trace_id = uuid.uuid4().hex
    span_id = _digest("span", seed, 16) if seed else uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01"


def trace_id_of(event_id: str) -> str:
    """The trace id :func:`traceparent` gives event ``event_id`` when no upstream trace exists."""
    return _digest("trace", event_id, 32)


# The ids of the changes a Bitrix24 ``batch`` request carries (set by the client around the
# batch call): its commands come from several deliveries, so the packer's task context,
# inherited from whichever delivery started it, must not speak for them.
_BATCH: contextvars.ContextVar[tuple[tuple[str, ...], tuple[str, ...]] | None] = (
    contextvars.ContextVar("trace_batch", default=None)
)


@contextmanager
def batch_scope(event_ids: Iterable[str], request_ids: Iterable[str]) -> Iterator[None]:
    """Calls made inside carry the ids of these changes instead of the log context's."""
    token = _BATCH.set(
        (
            tuple(dict.fromkeys(e for e in event_ids if e)),
            tuple(dict.fromkeys(r for r in request_ids if r)),
        )
    )
    try:
        yield
    finally:
        _BATCH.reset(token)


def current_ids() -> tuple[str, str]:
    """(event id, request id) of the call being made. A batch of several changes gives
    their ids comma-joined (an HTTP list value); its trace seed is that list."""
    scope = _BATCH.get()
    if scope is not None:
        return ",".join(scope[0]), ",".join(scope[1])
    return logctx.current("event_id"), logctx.current("request_id")


def outbound_headers() -> dict[str, str]:
    """``X-Request-Id`` and ``traceparent`` for a call made in the current context."""
    event_id, request_id = current_ids()
    out = {TRACEPARENT_HEADER: traceparent(event_id, request_id, logctx.current("traceparent"))}
    if request_id:
        out[REQUEST_ID_HEADER] = request_id
    return out
