"""Fetching the entities events name: ``batch`` calls of get commands, retried under the
RetryPolicy (``mmstream.retry.retry_bounded``), with per-command failures re-fetched one by one.

A ``batch`` answer reports failed commands in ``result_error``. Keyed by command name it
can be matched; but PHP encodes a map keyed 0..n-1 as a JSON list, and real answers show
lists with empty codes, so a failure cannot always be tied to its command. Reads are safe
to repeat, so every command without a usable answer is simply fetched again on its own,
where the HTTP status and error code are the call's own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import error_from_response
from connectors.bitrix24.events import EventRef
from mmstream.retry import RetryPolicy, retry_bounded
from stages.enrich.entities import SPECS, entity_of, get_command, get_params, is_gone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """The entity as the API returned it."""

    entity: dict[str, Any]


@dataclass(frozen=True)
class Gone:
    """The API says the entity does not exist (any more)."""


@dataclass(frozen=True)
class Failed:
    """No answer worth publishing: a permanent refusal, or retries ran out."""

    error: BaseException
    attempts: int


Outcome = Fetched | Gone | Failed


@dataclass(frozen=True)
class BatchAnswer:
    """A ``batch`` result split by command: answers, matched errors, unmatched errors."""

    results: dict[str, Any]
    errors: dict[str, Any]
    unmatched_errors: list[Any]


def split_batch(answer: Any, keys: list[str]) -> BatchAnswer:
    """Map a ``batch`` result back to the command keys it was sent with."""
    if not isinstance(answer, dict):
        return BatchAnswer({}, {}, [answer])
    numbered = keys == [str(i) for i in range(len(keys))]
    results = _by_key(answer.get("result"), keys, numbered)
    raw_errors = answer.get("result_error")
    if isinstance(raw_errors, dict):
        return BatchAnswer(results, {k: raw_errors[k] for k in keys if k in raw_errors}, [])
    # A list: keyed 0..n-1 on the portal, which says nothing about which commands failed.
    return BatchAnswer(results, {}, list(raw_errors or []))


def _by_key(section: Any, keys: list[str], numbered: bool) -> dict[str, Any]:
    if isinstance(section, dict):
        return {k: section[k] for k in keys if k in section}
    if isinstance(section, list) and numbered:
        # A JSON list only comes from keys exactly 0..m-1: the first m commands answered.
        return {str(i): value for i, value in enumerate(section)}
    return {}


class Fetcher:
    """Fetches entities for event refs, ``batch_max`` commands per call."""

    def __init__(self, client: Bitrix24Client, policy: RetryPolicy, batch_max: int) -> None:
        self.client = client
        self.policy = policy
        self.batch_max = batch_max

    async def fetch(self, refs: list[EventRef]) -> dict[str, Outcome]:
        """Outcome per entity key; never raises for a Bitrix24 error."""
        out: dict[str, Outcome] = {}
        for start in range(0, len(refs), self.batch_max):
            out.update(await self._chunk(refs[start : start + self.batch_max]))
        return out

    async def _chunk(self, refs: list[EventRef]) -> dict[str, Outcome]:
        cmd = {f"c{i}": get_command(ref) for i, ref in enumerate(refs)}
        # One entity label per batch (a closed set either way), "batch" when they are mixed.
        kinds = {ref.entity for ref in refs}
        answer, error, attempts = await self._attempt(
            lambda: self.client.call("batch", {"halt": 0, "cmd": cmd}),
            kinds.pop() if len(kinds) == 1 else "batch",
        )
        if error is not None:
            return {ref.key: Failed(error, attempts) for ref in refs}
        split = split_batch(answer, list(cmd))
        out: dict[str, Outcome] = {}
        again: list[EventRef] = []
        for name, ref in zip(cmd, refs, strict=True):
            if name in split.results:
                out[ref.key] = _outcome(ref, split.results[name])
            elif name in split.errors and is_gone(
                error_from_response(400, split.errors[name], method=SPECS[ref.entity].get_method)
            ):
                out[ref.key] = Gone()
            else:
                again.append(ref)
        if again:
            log.info(
                "batch commands without an answer, fetching one by one",
                extra={"commands": len(again), "unmatched_errors": len(split.unmatched_errors)},
            )
        for ref in again:
            out[ref.key] = await self._one(ref)
        return out

    async def _one(self, ref: EventRef) -> Outcome:
        method = SPECS[ref.entity].get_method
        answer, error, attempts = await self._attempt(
            lambda: self.client.call(method, get_params(ref)), ref.entity
        )
        if error is None:
            return _outcome(ref, answer)
        return Gone() if is_gone(error) else Failed(error, attempts)

    async def _attempt(
        self, call: Callable[[], Awaitable[Any]], entity: str
    ) -> tuple[Any, BaseException | None, int]:
        """(answer, None, attempts) or (None, the last error, attempts) under the policy."""
        attempts = 0

        async def counted() -> Any:
            nonlocal attempts
            attempts += 1
            return await call()

        try:
            answer = await retry_bounded(
                counted, self.policy, stage="enrich", what="bitrix24 read", entity=entity
            )
        except Exception as exc:  # noqa: BLE001 — permanent, or the policy gave up
            return None, exc, attempts
        return answer, None, attempts


def _outcome(ref: EventRef, answer: Any) -> Outcome:
    try:
        entity = entity_of(ref, answer)
    except Exception as exc:  # noqa: BLE001 — an unexpected answer shape is permanent
        return Failed(exc, 1)
    return Gone() if entity is None else Fetched(entity)
