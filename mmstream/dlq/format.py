"""Dead-letter records: the original bytes and headers plus why and where it failed.

Header names are stable API for SREs and the replay tooling:
``dlq.stage``, ``dlq.error.class``, ``dlq.error.code``, ``dlq.error.message``,
``dlq.error.retriable``, ``dlq.attempts``, ``dlq.first_failure``, ``dlq.last_failure``,
``dlq.source.topic``, ``dlq.source.partition``, ``dlq.source.offset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mmstream.errors import classify
from mmstream.kafka.producer import OutRecord

PREFIX = "dlq."
_MAX_MESSAGE = 2000


class Consumed(Protocol):
    """What a dead letter keeps of the consumed record (stages.source_record.SourceRecord is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class Failure:
    """What went wrong with one record, and how often we tried."""

    error: BaseException
    attempts: int
    first_failure: datetime
    last_failure: datetime


def dead_letter(record: Consumed, failure: Failure, *, stage: str, topic: str) -> OutRecord:
    """The DLQ record for ``record``: same key, value and headers, plus the failure headers.

    It goes to the same partition number as its source: DLQ topics are co-partitioned with
    the path they guard, so the worker that owns the source partition is their only writer.
    """
    err = classify(failure.error)
    cause = failure.error if failure.error is not err else err
    extra = {
        "stage": stage,
        "error.class": type(cause).__name__,
        "error.code": err.code,
        "error.message": str(failure.error)[:_MAX_MESSAGE],
        "error.retriable": str(err.retriable).lower(),
        "attempts": str(failure.attempts),
        "first_failure": failure.first_failure.isoformat(),
        "last_failure": failure.last_failure.isoformat(),
        "source.topic": record.topic,
        "source.partition": str(record.partition),
        "source.offset": str(record.offset),
    }
    headers = [h for h in record.headers if not h[0].startswith(PREFIX)]
    headers += [(PREFIX + k, v.encode()) for k, v in extra.items()]
    return OutRecord(
        topic=topic, value=record.value, key=record.key, headers=headers, partition=record.partition
    )


def failure_headers(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    """The ``dlq.*`` headers of a DLQ record, without the prefix."""
    return {k[len(PREFIX) :]: v.decode() for k, v in headers if k.startswith(PREFIX)}
