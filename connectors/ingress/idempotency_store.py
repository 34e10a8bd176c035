"""The ``ingress_idempotency`` table (migration 0002): claims, stored answers, expiry.

One row per (principal, path, Idempotency-Key). A request claims its key (status NULL) for a
lease, then stores its answer or releases the key; expired rows are deleted by the bridge's
purge job (purge.py).
See idempotency.py for the rules the middleware applies on top.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.ingress.errors import ApiError, ErrorKind
from mmstream.settings import Settings

HEADER = "Idempotency-Key"

_CLAIM = text("""
    INSERT INTO ingress_idempotency (principal, path, key, fingerprint, claim, lease_until, expires_at)
    VALUES (:principal, :path, :key, :fingerprint, :claim,
            now() + make_interval(secs => CAST(:lease_s AS double precision)),
            now() + make_interval(secs => CAST(:ttl_s AS double precision)))
    ON CONFLICT (principal, path, key) DO UPDATE
       SET fingerprint = excluded.fingerprint, claim = excluded.claim, status = NULL,
           headers = NULL, body = NULL, created_at = now(),
           lease_until = excluded.lease_until, expires_at = excluded.expires_at
     WHERE ingress_idempotency.expires_at <= now()
        OR (ingress_idempotency.status IS NULL AND ingress_idempotency.lease_until <= now()
            AND ingress_idempotency.fingerprint = excluded.fingerprint)
    RETURNING claim""")
_EXISTING = text("""
    SELECT fingerprint, status, headers, body FROM ingress_idempotency
     WHERE principal = :principal AND path = :path AND key = :key""")
_SAVE = text("""
    UPDATE ingress_idempotency SET status = :status, headers = CAST(:headers AS jsonb), body = :body
     WHERE principal = :principal AND path = :path AND key = :key AND claim = :claim""")
_RELEASE = text("""
    DELETE FROM ingress_idempotency
     WHERE principal = :principal AND path = :path AND key = :key AND claim = :claim""")
#: Deletes expired keys, a batch at a time (the bridge's purge job, purge.py, loops it).
PURGE = text("""
    DELETE FROM ingress_idempotency WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM ingress_idempotency WHERE expires_at < now()
         LIMIT :rows FOR UPDATE SKIP LOCKED))""")


@dataclass(frozen=True)
class Answer:
    """A stored answer: what the first request was told."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Claimed:
    """This request owns the key; ``claim`` identifies it in the row."""

    claim: str


def fingerprint(query: bytes, content_type: bytes, body: bytes) -> bytes:
    """What makes two requests under one key "the same request"."""
    digest = hashlib.sha256()
    for part in (query, content_type, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def storable(status: int) -> bool:
    """Only definite answers are remembered; a 5xx must stay retryable with the same key."""
    return 200 <= status < 300 or 400 <= status < 500


def claim_lease_s(settings: Settings) -> float:
    """How long a claimed key blocks others before a crashed request's claim may be taken over.

    Well above what a request can take: its produce waits at most the produce timeout.
    """
    return max(30.0, 4 * settings.kafka.produce_timeout_s)


class IdempotencyStore:
    """The ``ingress_idempotency`` table."""

    def __init__(self, *, ttl_s: float, lease_s: float) -> None:
        self.ttl_s = ttl_s
        self.lease_s = lease_s

    async def claim(self, engine: AsyncEngine, ident: dict, fp: bytes) -> Claimed | Answer:
        """Claim the key, or the stored answer; ApiError 409 (in flight) / 422 (reused)."""
        claim = str(uuid.uuid4())
        async with engine.begin() as conn:
            # Loop: a row seen taken may be released (a 5xx) before we read it.
            for _ in range(3):
                taken = await conn.execute(
                    _CLAIM,
                    {
                        **ident,
                        "fingerprint": fp,
                        "claim": claim,
                        "lease_s": self.lease_s,
                        "ttl_s": self.ttl_s,
                    },
                )
                if taken.first() is not None:
                    return Claimed(claim)
                row = (await conn.execute(_EXISTING, ident)).first()
                if row is None:
                    continue
                if bytes(row.fingerprint) != fp:
                    raise ApiError(
                        ErrorKind.IDEMPOTENCY_KEY_REUSED,
                        f"this {HEADER} was used for a different request; "
                        "use a new key for a new request",
                    )
                if row.status is None:
                    raise ApiError(
                        ErrorKind.IDEMPOTENCY_IN_PROGRESS,
                        f"a request with this {HEADER} is still being processed; "
                        "retry later for its answer",
                    )
                return Answer(row.status, [tuple(h) for h in row.headers], bytes(row.body))
        raise ApiError(ErrorKind.IDEMPOTENCY_IN_PROGRESS, f"the {HEADER} is contended; retry later")

    async def save(self, engine: AsyncEngine, ident: dict, claim: str, answer: Answer) -> bool:
        """Store the answer under our claim; False when the claim was taken over meanwhile."""
        async with engine.begin() as conn:
            done = await conn.execute(
                _SAVE,
                {
                    **ident,
                    "claim": claim,
                    "status": answer.status,
                    "headers": json.dumps(answer.headers),
                    "body": answer.body,
                },
            )
            return done.rowcount == 1

    async def release(self, engine: AsyncEngine, ident: dict, claim: str) -> None:
        """Forget the claim, so that the key can be used again at once."""
        async with engine.begin() as conn:
            await conn.execute(_RELEASE, {**ident, "claim": claim})
