"""CloudEvents 1.0 Kafka binding, binary mode: attributes travel as ``ce_*`` headers.

The payload stays the record value, so consumers that ignore CloudEvents still read it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mmstream import log as logctx

# Change ids are UUIDv5 in this namespace: the same change always gets the same id, which is
# what lets every stage (bridge, sink, outbox, egress) recognise a replay.
_CHANGE_NS = uuid.UUID("6f1c7a52-9a7e-4f5e-8d35-2b4f0e6b7a10")

REQUEST_ID = "x-request-id"
#: An upstream W3C trace (a 1С or Bitrix24 request's ``traceparent``), kept on the record so
#: the calls made for the change continue that trace (mmstream/trace/context.py).
TRACEPARENT = "traceparent"
CONTENT_TYPE = "content-type"


def change_id(entity: str, source_id: str, version: str) -> str:
    """The stable id of one version of one entity."""
    return str(uuid.uuid5(_CHANGE_NS, f"{entity}\x1f{source_id}\x1f{version}"))


@dataclass(frozen=True)
class CloudEvent:
    """The attributes of one event (the payload travels separately as the record value)."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    content_type: str = "application/json"
    request_id: str = ""
    #: The upstream traceparent; by default the one bound to the log context (the bridge's
    #: middleware binds a valid request header), so every record a traced request
    #: publishes carries it without each route passing it on.
    traceparent: str = field(default_factory=lambda: logctx.current(TRACEPARENT))

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers in CloudEvents binary mode, plus the request id for tracing."""
        out = [
            ("ce_specversion", b"1.0"),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_subject", self.subject.encode()),
            ("ce_time", self.time.encode()),
            (CONTENT_TYPE, self.content_type.encode()),
        ]
        if self.request_id:
            out.append((REQUEST_ID, self.request_id.encode()))
        if self.traceparent:
            out.append((TRACEPARENT, self.traceparent.encode()))
        return out

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> CloudEvent:
        """Read the attributes back; missing ones become empty strings."""
        return cls(
            id=headers.get("ce_id", ""),
            source=headers.get("ce_source", ""),
            type=headers.get("ce_type", ""),
            subject=headers.get("ce_subject", ""),
            time=headers.get("ce_time", ""),
            content_type=headers.get(CONTENT_TYPE, ""),
            request_id=headers.get(REQUEST_ID, ""),
            traceparent=headers.get(TRACEPARENT, ""),
        )


def now_iso() -> str:
    """RFC 3339 UTC timestamp for ``ce_time``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decode_headers(raw: object) -> dict[str, str]:
    """Kafka headers (list of pairs or mapping, values bytes) as a str->str dict."""
    if raw is None:
        return {}
    items = raw.items() if isinstance(raw, dict) else raw
    if not isinstance(items, Iterable):
        raise TypeError(f"Kafka headers must be pairs or a mapping, not {type(raw).__name__}")
    out: dict[str, str] = {}
    for key, value in items:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        out[str(key)] = "" if value is None else str(value)
    return out
