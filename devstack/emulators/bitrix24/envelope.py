"""The shapes a portal answers in: ``{"result", "total", "next", "time"}`` on success,
``{"error", "error_description"}`` (with an HTTP status) on failure, and the ``time`` block
whose ``operating`` counter Bitrix24 uses to throttle methods that run too long."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Bitrix24 accounts method execution time in 10-minute windows (operating / operating_reset_at).
OPERATING_WINDOW_S = 600


class ApiError(Exception):
    """A REST error answer: HTTP ``status`` with ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: Any, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, Any]:
        """The JSON error body, as the portal writes it."""
        return {"error": self.error, "error_description": self.description}


def legacy_error(description: str) -> ApiError:
    """The error of a legacy ``crm.*`` method."""
    # Legacy crm.* methods answer HTTP 400 with an empty code and only a text.
    return ApiError(400, "", description)


def missing_param(name: str) -> ApiError:
    """The error of a required parameter that was not sent."""
    return ApiError(400, 100, f"Could not find value for parameter {{{name}}}")


@dataclass
class Outcome:
    """What running one method produced: a result (with paging) or an error, and its time."""

    status: int
    result: Any = None
    error: ApiError | None = None
    total: int | None = None
    next: int | None = None
    time: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The top-level JSON answer: the error envelope or the result envelope."""
        if self.error is not None:
            body = self.error.body()
            # Only a time-limit error carries a time block (with its operating_reset_at).
            if self.time:
                body["time"] = self.time
            return body
        body = {"result": self.result}
        if self.total is not None:
            body["total"] = self.total
        if self.next is not None:
            body["next"] = self.next
        body["time"] = self.time
        return body


class OperatingTime:
    """Execution time per method, summed over the portal's 10-minute windows."""

    def __init__(self) -> None:
        # method -> [window start, seconds spent in the window]
        self._windows: dict[str, list[float]] = {}

    def reset(self) -> None:
        """Forget every window."""
        self._windows.clear()

    def block(
        self, method: str, start: float, finish: float, *, account: bool = True
    ) -> dict[str, Any]:
        """The ``time`` block of a call of ``method``; ``account`` adds its duration."""
        window = self._windows.setdefault(method, [start, 0.0])
        if start >= window[0] + OPERATING_WINDOW_S:
            window[:] = [start, 0.0]
        if account:
            window[1] += finish - start
        return {
            "start": start,
            "finish": finish,
            "duration": finish - start,
            "processing": finish - start,
            "date_start": iso(start),
            "date_finish": iso(finish),
            "operating_reset_at": int(window[0] + OPERATING_WINDOW_S),
            "operating": window[1],
        }


def iso(ts: float) -> str:
    """A timestamp as the portal writes dates: local ISO 8601 with offset, in seconds."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
