"""One dead-letter record as the SRE tooling reads it: coordinates, bytes and failure headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from mmstream.dlq.format import failure_headers

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class DlqEntry:
    """A record read from a DLQ topic, with its failure headers decoded."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: datetime | None = None
    failure: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp_ms: int | None,
    ) -> DlqEntry:
        """From raw record parts; ``timestamp_ms`` <= 0 or None means unknown."""
        headers = [(k, v if isinstance(v, bytes) else bytes(v or b"")) for k, v in headers or []]
        ts = (
            datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            if timestamp_ms and timestamp_ms > 0
            else None
        )
        return cls(topic, partition, offset, key, value, headers, ts, failure_headers(headers))

    @property
    def coordinates(self) -> str:
        """``topic/partition/offset``: how an operator names one DLQ record."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def entity(self) -> str:
        """The record key as text (the canonical entity id on every path)."""
        return "" if self.key is None else self.key.decode("utf-8", "replace")

    @property
    def stage(self) -> str:
        return self.failure.get("stage", "")

    @property
    def code(self) -> str:
        """The machine-readable reason (``dlq.error.code``); ``unknown`` when absent."""
        return self.failure.get("error.code") or "unknown"

    @property
    def failed_at(self) -> datetime | None:
        """When it was dead-lettered: the last failure, else the record's timestamp."""
        return parse_time(self.failure.get("last_failure", "")) or self.timestamp

    @property
    def source_topic(self) -> str:
        return self.failure.get("source.topic", "")

    @property
    def source_partition(self) -> int | None:
        return _int(self.failure.get("source.partition"))

    @property
    def source_offset(self) -> int | None:
        return _int(self.failure.get("source.offset"))


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time; a time without a zone is taken as UTC. None when unparsable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
