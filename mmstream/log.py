"""Structured (JSON) logging with the request / event id carried in context.

Call :func:`setup` once per process. Anything that knows the id of the request or event
it is working on binds it with :func:`bind`; every log line written inside that context
carries it, so one id can be followed from the bridge through Kafka to the target API.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

from pythonjsonlogger.json import JsonFormatter

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for key, value in _context.get().items():
            setattr(record, key, value)
        return True


def setup(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route all loggers (ours, uvicorn, faust, kafka clients) through one JSON handler."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faust", "mode", "kafka", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Add fields (request_id, event_id, …) to every log line written inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def current(name: str) -> str:
    """A field of the bound log context ("" when unbound): how code deep in a delivery
    passes the request id on to the records it produces."""
    return str(_context.get().get(name, ""))
