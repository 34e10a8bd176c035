"""Exchange-plan message numbers of 1С batch pushes: a re-sent message is answered again,
never published again.

1С re-sends an exchange message until it is acknowledged, so the same message arriving
twice is normal. A batch post may carry ``X-1C-Exchange-Node`` + ``X-1C-Message-No``; the
answer to a message that published something is stored in ``onec_exchange_message`` and a
re-send gets that answer back (``duplicate_message: true``) without touching Kafka.

Concurrency: a request claims the message's number in a short transaction (a row whose
response is an in-flight marker), publishes with no database connection held, then stores
its answer in the row (or deletes the row when nothing was published). Of two identical
messages arriving at once the second is told the message is busy (409 + Retry-After) and
gets the stored answer when it retries. A claim whose request died is taken over after its
lease (the longest a publish can take).

Crash window: a crash (or a lost database connection) after the publish was acknowledged
and before the answer was stored leaves the claim, taken over after its lease. 1С then
re-sends, and the message is published a second time with the same event ids; downstream
dedupe by (entity, id, DataVersion) absorbs it. The opposite order (answer first) would lose
the message on such a crash.

Retention: numbers are kept ``ingress.exchange_message_retention_s`` (the bridge's purge
job, connectors/ingress/purge.py); 1С re-sends within hours, never after weeks.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.errors import ConnectorError
from mmstream.errors import DatabaseUnavailable, classify

NODE_HEADER = "X-1C-Exchange-Node"
NUMBER_HEADER = "X-1C-Message-No"

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
        return {
            "principal": self.principal,
            "node": self.node,
            "number": self.number,
            "object": self.object_name,
        }


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


@dataclass(frozen=True)
class Claimed:
    """This request owns the message number until it remembers or releases it."""

    claim: str


# A message being published is a row whose response is only this marker (a stored answer
# never has the key); its received_at is when the claim was taken.
_IN_FLIGHT = "_in_flight"
_CLAIM = text("""
    INSERT INTO onec_exchange_message AS m
           (principal, node, message_no, object, body_sha256, response, received_at)
    VALUES (:principal, :node, :number, :object, :digest,
            jsonb_build_object('_in_flight', CAST(:claim AS text)), now())
    ON CONFLICT (principal, node, message_no, object) DO UPDATE
       SET body_sha256 = excluded.body_sha256, response = excluded.response,
           received_at = excluded.received_at
     WHERE m.response -> '_in_flight' IS NOT NULL
       AND m.received_at <= now() - make_interval(secs => CAST(:lease_s AS double precision))
    RETURNING 1""")
_EXISTING = text("""
    SELECT body_sha256, response FROM onec_exchange_message
     WHERE principal = :principal AND node = :node AND message_no = :number AND object = :object""")
_REMEMBER = text("""
    UPDATE onec_exchange_message SET response = CAST(:response AS jsonb), received_at = now()
     WHERE principal = :principal AND node = :node AND message_no = :number AND object = :object
       AND response ->> '_in_flight' = :claim""")
_RELEASE = text("""
    DELETE FROM onec_exchange_message
     WHERE principal = :principal AND node = :node AND message_no = :number AND object = :object
       AND response ->> '_in_flight' = :claim""")
#: Deletes message numbers older than the retention, a batch at a time (see purge.py).
PURGE = text("""
    DELETE FROM onec_exchange_message WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM onec_exchange_message
         WHERE received_at < now() - make_interval(secs => CAST(:keep_s AS double precision))
         LIMIT :rows FOR UPDATE SKIP LOCKED))""")


async def claim(engine: AsyncEngine, message: ExchangeMessage, *, lease_s: float) -> Claimed | dict:
    """Claim the message for publishing (:class:`Claimed`), or its stored answer (a dict).

    One short transaction: no connection is held while the caller publishes (a slow broker
    must not empty the bridge's pool). A message another request is publishing gives
    :class:`ExchangeMessageBusy`, unless that claim's lease (the longest a publish can take)
    ran out: its request died, and this one takes over.
    """
    claim_id = str(uuid.uuid4())
    params = {
        **message.key_params(),
        "digest": message.body_sha256,
        "claim": claim_id,
        "lease_s": lease_s,
    }
    async with _database(message):
        async with engine.begin() as conn:
            # Loop: a row seen in flight may be released (a failed publish) before we read it.
            for _ in range(3):
                if (await conn.execute(_CLAIM, params)).first() is not None:
                    return Claimed(claim_id)
                row = (await conn.execute(_EXISTING, message.key_params())).first()
                if row is None:
                    continue
                if _IN_FLIGHT in row.response:
                    break
                if row.body_sha256 != message.body_sha256:
                    raise ExchangeMessageConflict(
                        f"message {message.number} of node {message.node!r} ({message.object_name}) "
                        "was received before with a different body; the node's numbering looks reset"
                    )
                return row.response
    raise ExchangeMessageBusy(
        f"message {message.number} of node {message.node!r} is being published "
        "by another request; retry shortly"
    )


async def remember(
    engine: AsyncEngine, message: ExchangeMessage, claimed: Claimed, response: dict[str, Any]
) -> bool:
    """Store the answer; call only after the broker acknowledged the records. False when the
    claim was taken over meanwhile (the records are in Kafka either way)."""
    async with _database(message):
        async with engine.begin() as conn:
            done = await conn.execute(
                _REMEMBER,
                {
                    **message.key_params(),
                    "claim": claimed.claim,
                    "response": json.dumps(response, ensure_ascii=False),
                },
            )
            return done.rowcount == 1


async def release(engine: AsyncEngine, message: ExchangeMessage, claimed: Claimed) -> None:
    """Give the number back (nothing was published), so a re-send runs at once."""
    async with _database(message):
        async with engine.begin() as conn:
            await conn.execute(_RELEASE, {**message.key_params(), "claim": claimed.claim})


@asynccontextmanager
async def _database(message: ExchangeMessage) -> AsyncIterator[None]:
    """Database failures as DatabaseUnavailable (retriable) or the project's classification."""
    try:
        yield
    except PoolTimeout as exc:
        raise DatabaseUnavailable(f"no database connection free: {exc}") from exc
    except (SQLAlchemyError, psycopg.Error) as exc:
        raise classify(exc) from exc
