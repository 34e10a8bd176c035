"""Which DLQ records an operator means: by reason, entity, failure time or coordinates."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime

from mmstream.dlq.entry import DlqEntry


@dataclass(frozen=True)
class Selection:
    """Filters that all have to match; an empty selection matches every record.

    ``since``/``until`` compare with the time the record was dead-lettered (its last
    failure): ``since`` inclusive, ``until`` exclusive.
    """

    reason: str | None = None
    entity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    partition: int | None = None
    offset: int | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def matches(self, entry: DlqEntry) -> bool:
        """Whether ``entry`` is selected."""
        if self.reason is not None and entry.code != self.reason:
            return False
        if self.entity is not None and entry.entity != self.entity:
            return False
        if self.partition is not None and entry.partition != self.partition:
            return False
        if self.offset is not None and entry.offset != self.offset:
            return False
        if self.since is not None or self.until is not None:
            at = entry.failed_at
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at >= self.until:
                return False
        return True

    def filter(self, entries: Iterable[DlqEntry], limit: int | None = None) -> Iterator[DlqEntry]:
        """The selected entries, at most ``limit`` of them (None: all)."""
        if limit is not None and limit <= 0:
            return
        taken = 0
        for entry in entries:
            if self.matches(entry):
                yield entry
                taken += 1
                if limit is not None and taken >= limit:
                    return

    def describe(self) -> dict[str, str | int]:
        """The filters that are set, for the audit trail and the preview."""
        return {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in asdict(self).items()
            if v is not None
        }
