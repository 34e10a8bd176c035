"""Injected failures: what the admin endpoint accepts and which calls they hit."""

from __future__ import annotations

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
