"""``Idempotency-Key`` on every POST: a re-sent request gets the first answer, not a second record.

Pure ASGI middleware, so it holds for every route without the route doing anything. For a
POST carrying the header from an identified caller (see auth.py), keyed by (principal, path,
key) in PostgreSQL (table ``ingress_idempotency``, migration 0002) so every replica sees it:

- first time: the key is claimed, the request runs, and its answer (status, body, headers)
  is stored before it is sent, if it is a 2xx or 4xx. Any other answer (a 503 because Kafka
  was down, a 500) releases the key, so the client can retry with the same key;
- the same key and the same request (query, content type and body) again: the stored answer
  is replayed byte for byte, with ``Idempotent-Replayed: true``; its body keeps the original
  ``request_id``, the ``X-Request-Id`` header is the new request's;
- the same key with another request: 422 ``idempotency_key_reused``;
- the same key while the first request still runs: 409 ``idempotency_in_progress``.

Keys are remembered ``ingress.idempotency_ttl_s``; expired rows are deleted by the bridge's
purge job (purge.py, every ``ingress.purge_interval_s``, in batches until none is left).
The body is buffered in memory, so keyed requests are limited to ``ingress.max_body_bytes`` even on routes that allow more.
Requests without a bearer token or API key (routes that authenticate themselves) are passed
through untouched: there is no verified principal to scope their keys to.

Crash window: if the bridge dies after Kafka acknowledged the record but before the answer
was stored, the key stays claimed until its lease ends (:func:`claim_lease_s`; 409 meanwhile); the
re-sent request then runs again and publishes again. That duplicate carries the same CloudEvent
id (ids derive from entity, source id and version) and the sink's dedupe by (entity, id,
version) absorbs it, so no second downstream change results (design.md invariant 2).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.ingress.errors import ApiError, ErrorKind
from connectors.ingress.idempotency_store import (
    HEADER,
    Answer,
    Claimed,
    IdempotencyStore,
    claim_lease_s,
    fingerprint,
    storable,
)
from connectors.ingress.middleware import BodyTooLarge, send_error
from mmstream.errors import classify
from mmstream.settings import Settings

log = logging.getLogger(__name__)

_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Per-answer headers that must not be replayed as they were (the replay has its own).
_NOT_REPLAYED = {b"x-request-id", b"content-length", b"date", b"server"}


class Idempotency:
    """Pure ASGI middleware applying :class:`IdempotencyStore` to every keyed POST."""

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.store = IdempotencyStore(
            ttl_s=settings.ingress.idempotency_ttl_s, lease_s=claim_lease_s(settings)
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        principal = scope.get("state", {}).get("principal")
        if key is None or not principal:
            await self.app(scope, receive, send)
            return
        retry = {"Retry-After": str(self.settings.ingress.retry_after_s)}
        try:
            ident = {"principal": principal, "path": scope["path"], "key": _checked(key)}
            body = await _read_body(receive)
            if body is None:
                return  # the client went away
            fp = fingerprint(
                scope.get("query_string", b""), headers.get(b"content-type", b""), body
            )
            engine = scope["app"].state.engine
            if engine is None:
                raise ApiError(
                    ErrorKind.DATABASE_UNAVAILABLE,
                    f"{HEADER} needs the bridge's database, and none is configured (DATABASE_URL)",
                    headers=retry,
                )
            outcome = await self._claim(engine, ident, fp, retry)
        except BodyTooLarge as exc:
            await send_error(scope, receive, send, ApiError(ErrorKind.BODY_TOO_LARGE, exc.detail))
            return
        except ApiError as exc:
            await send_error(scope, receive, send, exc)
            return
        if isinstance(outcome, Answer):
            log.info(
                "idempotent replay",
                extra={"idempotency_key": ident["key"], "status": outcome.status},
            )
            await _send_answer(send, outcome, replayed=True)
            return
        await self._run(scope, receive, send, engine, ident, outcome.claim, body)

    async def _claim(
        self, engine: AsyncEngine, ident: dict, fp: bytes, retry: dict
    ) -> Claimed | Answer:
        try:
            return await self.store.claim(engine, ident, fp)
        except ApiError as exc:
            if exc.kind is ErrorKind.IDEMPOTENCY_IN_PROGRESS:
                exc.headers = {
                    "Retry-After": str(max(1, math.ceil(self.settings.kafka.produce_timeout_s)))
                }
            raise
        except Exception as exc:
            error = classify(exc)
            if not error.retriable:
                raise
            raise ApiError(
                ErrorKind.DATABASE_UNAVAILABLE,
                "the idempotency key store is unavailable; retry later",
                headers=retry,
            ) from exc

    async def _run(
        self, scope, receive, send, engine: AsyncEngine, ident: dict, claim: str, body: bytes
    ) -> None:
        delivered = False

        async def replay_body():
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: wait for the disconnect, as a server would
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            # Shielded: a cancelled request must still give its key back.
            await asyncio.shield(self._forget(engine, ident, claim))
            raise
        answer = Answer(
            start.get("status", 500),
            [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in start.get("headers", [])
                if k.lower() not in _NOT_REPLAYED
            ],
            b"".join(chunks),
        )
        if storable(answer.status):
            await self._remember(engine, ident, claim, answer)
        else:
            await self._forget(engine, ident, claim)
        await _send_answer(send, answer, replayed=False)

    async def _remember(self, engine: AsyncEngine, ident: dict, claim: str, answer: Answer) -> None:
        # The record is already in Kafka: failing to remember the answer must not hide it.
        try:
            if not await self.store.save(engine, ident, claim, answer):
                log.warning(
                    "idempotency claim was taken over before the answer was stored",
                    extra={"idempotency_key": ident["key"]},
                )
        except Exception:
            log.warning(
                "could not store the answer of an idempotent request; a re-send after "
                "the lease will run again",
                exc_info=True,
                extra={"idempotency_key": ident["key"]},
            )

    async def _forget(self, engine: AsyncEngine, ident: dict, claim: str) -> None:
        try:
            await self.store.release(engine, ident, claim)
        except Exception:
            log.warning(
                "could not release an idempotency claim; it ends with its lease",
                exc_info=True,
                extra={"idempotency_key": ident["key"]},
            )


def _checked(raw: bytes) -> str:
    key = raw.decode("latin-1")
    if not _VALID_KEY.match(key):
        raise ApiError(
            ErrorKind.BAD_REQUEST,
            f"the {HEADER} must be 1 to 255 visible ASCII characters (a UUID is a good key)",
        )
    return key


async def _read_body(receive) -> bytes | None:
    """The whole body (limited by BodyLimit's receive), or None when the client disconnected."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_answer(send, answer: Answer, *, replayed: bool) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})
