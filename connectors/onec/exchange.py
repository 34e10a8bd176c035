"""Exchange-plan message numbers of 1С batch pushes: a re-sent message is answered again,
never published again.

1С re-sends an exchange message until it is acknowledged, so the same message arriving
twice is normal. A batch post may carry ``X-1C-Exchange-Node`` + ``X-1C-Message-No``; the
answer to a message that published something is stored in ``onec_exchange_message`` and a
re-send gets that answer back (``duplicate_message: true``) without touching Kafka.

Concurrency: a transaction-scoped advisory lock per message serializes identical messages,
so of two arriving at once the second waits for the first and then sees its row (a wait
longer than the publish could take ends in :class:`ExchangeMessageBusy`). The row is written
only after the broker acknowledged every record, in the same transaction as the lock.

Crash window: a crash (or a lost database connection) after the publish was acknowledged
and before the row committed leaves no row. 1С then re-sends, and the message is published
a second time with the same event ids; downstream dedupe by (entity, id, DataVersion)
absorbs it. The opposite order (row first) would lose the message on such a crash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connectors.errors import ConnectorError
from mmstream.errors import DatabaseUnavailable, classify

NODE_HEADER = "X-1C-Exchange-Node"
NUMBER_HEADER = "X-1C-Message-No"

# Namespaces these advisory locks away from every other advisory lock on the database.
_LOCK_CLASS = 0x31434558
_LOCK_NOT_AVAILABLE = "55P03"
_NUMBER_RE = re.compile(r"^[0-9]{1,18}$")
_MAX_NODE = 150


class ExchangeHeadersInvalid(ConnectorError):
    """The exchange headers are malformed or only one of the pair was sent. The 1С
    extension must send both: the node code and a whole message number."""

    code = "exchange_headers_invalid"


class ExchangeMessageConflict(ConnectorError):
    """A message number this node already used arrived with a different body.

    1С numbers messages upwards per node, so this means the node's numbering was reset
    (a base restored from a backup, a node re-created). Acknowledging it would drop its
    changes; an operator must reset the node's exchange (new numbers) or clear its rows.
    """

    code = "exchange_message_conflict"
    alert = True


class ExchangeMessageBusy(ConnectorError):
    """The same message is being published by another request right now; retry shortly."""

    code = "exchange_message_busy"
    retriable = True


@dataclass(frozen=True)
class ExchangeMessage:
    """One exchange message of one 1С object, as identified by its sender."""

    principal: str
    node: str
    number: int
    object_name: str
    body_sha256: str

    def key_params(self) -> dict[str, Any]:
        return {"principal": self.principal, "node": self.node, "number": self.number,
                "object": self.object_name}


def parse_headers(node: str | None, number: str | None) -> tuple[str, int] | None:
    """(node, message number) from the two headers, None when neither is sent.

    Header values travel as Latin-1; a node code in Cyrillic arrives either as raw UTF-8
    bytes or percent-encoded, and both are read back here.
    """
    if node is None and number is None:
        return None
    if node is None or number is None:
        raise ExchangeHeadersInvalid(f"send both {NODE_HEADER} and {NUMBER_HEADER}, or neither")
    try:
        node = node.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    node = unquote(node).strip()
    if not node or len(node) > _MAX_NODE or not node.isprintable():
        raise ExchangeHeadersInvalid(f"{NODE_HEADER} must be 1 to {_MAX_NODE} printable characters")
    if not _NUMBER_RE.match(number.strip()):
        raise ExchangeHeadersInvalid(f"{NUMBER_HEADER} must be a whole number, got {number!r}")
    return node, int(number)


def body_digest(raw: bytes) -> str:
    """The SHA-256 of a request body, to tell a re-send from a reused number."""
    return hashlib.sha256(raw).hexdigest()


class MessageSlot:
    """The locked place of one message: its earlier answer, or the means to store this one."""

    def __init__(self, conn: AsyncConnection, message: ExchangeMessage, previous: dict | None) -> None:
        self._conn = conn
        self._message = message
        #: The stored answer when this message was received before, else None.
        self.previous = previous

    async def remember(self, response: dict[str, Any]) -> None:
        """Store the answer; call only after the broker acknowledged the records."""
        await self._conn.execute(
            text("INSERT INTO onec_exchange_message "
                 "(principal, node, message_no, object, body_sha256, response) "
                 "VALUES (:principal, :node, :number, :object, :digest, CAST(:response AS jsonb)) "
                 "ON CONFLICT DO NOTHING"),
            {**self._message.key_params(), "digest": self._message.body_sha256,
             "response": json.dumps(response, ensure_ascii=False)},
        )


@asynccontextmanager
async def receive(engine: AsyncEngine, message: ExchangeMessage, *,
                  lock_timeout_s: float) -> AsyncIterator[MessageSlot]:
    """Hold the message's lock for the block; the slot says whether it was seen before.

    Database failures become DatabaseUnavailable (retriable); errors of the block pass
    through unchanged and roll the transaction back, so nothing is remembered.
    """
    try:
        async with engine.begin() as conn:
            # SET takes no bind parameters; the value is a number we computed.
            await conn.execute(text(f"SET LOCAL lock_timeout = '{max(1, int(lock_timeout_s * 1000))}ms'"))
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(:principal || chr(31) || :node "
                     "|| chr(31) || CAST(:number AS text) || chr(31) || :object))"),
                {"cls": _LOCK_CLASS, **message.key_params()},
            )
            row = (await conn.execute(
                text("SELECT body_sha256, response FROM onec_exchange_message WHERE principal = :principal "
                     "AND node = :node AND message_no = :number AND object = :object"),
                message.key_params(),
            )).first()
            if row is not None and row.body_sha256 != message.body_sha256:
                raise ExchangeMessageConflict(
                    f"message {message.number} of node {message.node!r} ({message.object_name}) was "
                    "received before with a different body; the node's numbering looks reset")
            yield MessageSlot(conn, message, None if row is None else row.response)
    except PoolTimeout as exc:
        # Every pooled connection is busy holding a message lock: transient, like a slow database.
        raise DatabaseUnavailable(f"no database connection free: {exc}") from exc
    except (SQLAlchemyError, psycopg.Error) as exc:
        if getattr(getattr(exc, "orig", exc), "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise ExchangeMessageBusy(
                f"message {message.number} of node {message.node!r} is being published by another "
                "request; retry shortly") from exc
        raise classify(exc) from exc
