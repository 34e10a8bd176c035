"""The consumed record as every stage sees it, independent of the Faust event type."""

from __future__ import annotations

from dataclasses import dataclass

from mmstream.envelope import decode_headers


@dataclass(frozen=True)
class SourceRecord:
    """One consumed Kafka record with its coordinates and original bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def from_event(cls, event) -> SourceRecord:
        """From a Faust event (value_serializer='raw', so value is the original bytes)."""
        msg = event.message
        headers = msg.headers or []
        if isinstance(headers, dict):
            headers = list(headers.items())
        return cls(
            msg.topic,
            msg.partition,
            msg.offset,
            msg.key,
            msg.value,
            [(k, v if isinstance(v, bytes) else bytes(v or b"")) for k, v in headers],
        )

    @property
    def header_map(self) -> dict[str, str]:
        """Headers decoded to str (last value wins)."""
        return decode_headers(self.headers)
