"""The timeline of one entity, from any of its ids: ``mmctl trace ID`` and
``GET /v1/admin/trace/{id}``.

An id may be a 1С GUID or canonical id, a Bitrix24 id (through the crosswalk), an event id
(``ce_id``), a request id (``X-Request-Id``) or the trace id of an upstream W3C
``traceparent`` a 1С or Bitrix24 request carried (kept on the change, continued by the calls
made for it). :func:`collect` reads what PostgreSQL
holds — crosswalk, ingress answers (1С exchange messages, idempotency keys), versions seen
(``source_version``), published changes (``outbox``), egress attempts (``integration_log``),
what was last delivered (``egress_delivery``), parks (``egress_parked``), replays
(``ops_audit``) — and, when asked, the DLQ topics; :func:`assemble` (pure) turns the rows
into one time-ordered list. Read-only throughout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream.trace.context import trace_id_of

#: Rows read per source at most: a trace is for reading, not for exporting a table.
LIMIT = 500
#: A W3C trace id (the second field of a traceparent).
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Found:
    """The rows each source gave for the ids of one trace (dicts, as read)."""

    crosswalk: list[dict] = field(default_factory=list)
    exchange: list[dict] = field(default_factory=list)
    idempotency: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    outbox: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    delivered: list[dict] = field(default_factory=list)
    parked: list[dict] = field(default_factory=list)
    dlq: list[dict] = field(default_factory=list)
    replays: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One thing that happened to the entity."""

    at: datetime | None
    kind: str  # ingress, version, outbox, egress, delivered, parked, dlq, replay
    summary: str
    details: dict[str, Any]


@dataclass
class Timeline:
    query: str
    entity_ids: list[str]
    event_ids: list[str]
    request_ids: list[str]
    external_ids: list[dict[str, str]]
    steps: list[Step]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["trace_ids"] = {e: trace_id_of(e) for e in self.event_ids}
        for step in out["steps"]:
            step["at"] = step["at"].isoformat() if step["at"] else None
        return out


def _ts(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            return _ts(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _headers(value: Any) -> dict[str, str]:
    """Outbox / parked headers as a dict: stored as an object or as [name, value] pairs."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    for pair in value or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            out[str(pair[0]).lower()] = str(pair[1])
    return out


def with_attempts(calls: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Calls (in id order) with ``attempt``: the how-manieth call of the same operation on
    the same target for the same event it was (1 for calls made for no event)."""
    seen: dict[tuple, int] = {}
    out = []
    for call in sorted(calls, key=lambda c: c["id"]):
        key = (call.get("event_id"), call.get("target"), call.get("operation"))
        attempt = seen.get(key, 0) + 1 if call.get("event_id") else 1
        seen[key] = attempt
        out.append({**call, "attempt": attempt})
    return out


def replays_of(
    entry: Mapping[str, Any], replays: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The audited replays (``ops_audit`` rows of action dlq.replay) that took the DLQ
    record ``entry`` (topic, partition, offset) back into the pipeline."""
    out = []
    for row in replays:
        if row.get("target") != entry["topic"]:
            continue
        details = row.get("details") or {}
        runs = ((details.get("before") or {}).get("offsets") or {}).get(str(entry["partition"]), [])
        if any(lo <= entry["offset"] <= hi for lo, hi in runs):
            out.append(row)
    return out


def assemble(
    query: str,
    found: Found,
    *,
    entity_ids: Iterable[str] = (),
    event_ids: Iterable[str] = (),
    request_ids: Iterable[str] = (),
) -> Timeline:
    """The rows of every source as one list of steps, oldest first (undated last)."""
    steps: list[Step] = []
    published = {(o["entity"], o["entity_id"], o["version"]) for o in found.outbox}
    for row in found.exchange:
        steps.append(
            Step(
                _ts(row["received_at"]),
                "ingress",
                f"1С exchange message {row['node']}#{row['message_no']} ({row['object']})",
                {
                    "principal": row["principal"],
                    "request_id": (row.get("response") or {}).get("request_id", ""),
                    "answer": row.get("response"),
                },
            )
        )
    for row in found.idempotency:
        steps.append(
            Step(
                _ts(row["created_at"]),
                "ingress",
                f"{row['path']} Idempotency-Key {row['key']} answered {row['status']}",
                {"principal": row["principal"], "request_id": row.get("request_id", "")},
            )
        )
    for row in found.versions:
        merged = (row["entity"], row["source_id"], row["version"]) in published
        steps.append(
            Step(
                _ts(row["seen_at"]),
                "version",
                f"{row['entity']} {row['source_id']} version {row['version']} "
                + (
                    "merged (published)" if merged else "seen, not published (skipped or unchanged)"
                ),
                {"entity": row["entity"], "version": row["version"], "merged": merged},
            )
        )
    for row in found.outbox:
        headers = _headers(row.get("headers"))
        steps.append(
            Step(
                _ts(row["created_at"]),
                "outbox",
                f"{row['change']} {row['entity']} {row['entity_id']} v{row['version']} "
                + (
                    f"published {row['published_at']}"
                    if row.get("published_at")
                    else "not yet published"
                ),
                {
                    "outbox_id": row["id"],
                    "event_id": str(row["event_id"]),
                    "request_id": headers.get("x-request-id", ""),
                    "published_at": str(row["published_at"]) if row.get("published_at") else None,
                },
            )
        )
    # The log row names the event; the entity it is about comes from the outbox.
    entity_of = {str(o["event_id"]): f"{o['entity']} {o['entity_id']}" for o in found.outbox}
    for row in with_attempts(found.calls):
        status = (
            row["status"] if row.get("status") is not None else (row.get("error") or "no answer")
        )
        steps.append(
            Step(
                _ts(row["at"]),
                "egress",
                f"{row['target']} {row['operation']} attempt {row['attempt']}: {status} "
                f"in {row['latency_ms']:.0f} ms",
                {
                    k: row.get(k)
                    for k in (
                        "target",
                        "operation",
                        "http_method",
                        "url",
                        "event_id",
                        "request_id",
                        "traceparent",
                        "attempt",
                        "status",
                        "error",
                        "request",
                        "response",
                        "latency_ms",
                    )
                }
                | {"entity": entity_of.get(row.get("event_id") or "", "")},
            )
        )
    for row in found.delivered:
        steps.append(
            Step(
                _ts(row["delivered_at"]),
                "delivered",
                f"last delivered to {row['target']} as {row.get('external_id') or '-'}",
                {
                    "target": row["target"],
                    "event_id": str(row["last_event_id"]),
                    "outbox_id": row["last_outbox_id"],
                    "external_id": row.get("external_id"),
                },
            )
        )
    for row in found.parked:
        steps.append(
            Step(
                _ts(row["parked_at"]),
                "parked",
                f"parked for {row['target']}: {row.get('error_code') or '-'} after {row['attempts']} attempt(s)",
                {
                    "target": row["target"],
                    "attempts": row["attempts"],
                    "error_code": row.get("error_code"),
                    "last_error": row.get("last_error"),
                    "next_attempt_at": str(row["next_attempt_at"]),
                    "event_id": _headers(row.get("record_headers")).get("ce_id", ""),
                },
            )
        )
    for row in found.dlq:
        steps.append(
            Step(
                _ts(row.get("failed_at")),
                "dlq",
                f"dead-lettered to {row['topic']}/{row['partition']}/{row['offset']}: {row['code']}",
                dict(row),
            )
        )
        for replay in replays_of(row, found.replays):
            details = replay.get("details") or {}
            steps.append(
                Step(
                    _ts(replay["at"]),
                    "replay",
                    f"replayed by {replay['actor']} (replay {details.get('replay_id', replay['id'])})",
                    {
                        "audit_id": replay["id"],
                        "actor": replay["actor"],
                        "outcome": details.get("outcome"),
                        "after": details.get("after"),
                    },
                )
            )
    far = datetime.max.replace(tzinfo=UTC)
    steps.sort(key=lambda s: s.at or far)
    externals = [
        {
            "system": r["system"],
            "entity": r["entity"],
            "canonical_id": r["canonical_id"],
            "external_id": r["external_id"],
        }
        for r in found.crosswalk
    ]
    return Timeline(
        query,
        sorted(set(entity_ids)),
        sorted(set(event_ids)),
        sorted(set(request_ids)),
        externals,
        steps,
    )


# --- reading -----------------------------------------------------------------------------

_CROSSWALK = text(
    "SELECT system, entity, canonical_id, external_id FROM crosswalk "
    "WHERE canonical_id = ANY(:ids) OR external_id = ANY(:ids) LIMIT :lim"
)
_OUTBOX = text("""
    SELECT id, event_id::text AS event_id, entity, entity_id, change, version, headers,
           created_at, published_at FROM outbox
     WHERE entity_id = ANY(:ids) OR event_id::text = ANY(:ids) OR headers->>'x-request-id' = ANY(:ids)
     ORDER BY id LIMIT :lim""")
_CALLS = text("""
    SELECT id, at, target, operation, http_method, url, event_id, request_id, traceparent,
           request, status, error, response, latency_ms FROM integration_log
     WHERE event_id = ANY(:events) OR request_id = ANY(:requests) ORDER BY id LIMIT :lim""")
# The changes an upstream trace id names: the outbox entries that kept its traceparent and
# the calls that continued it. Not indexed (split_part): an operator's look-up, LIMITed.
_BY_TRACE = text("""
    SELECT event_id::text AS event_id FROM outbox WHERE split_part(headers->>'traceparent', '-', 2) = :trace
    UNION SELECT event_id FROM integration_log WHERE split_part(traceparent, '-', 2) = :trace
      AND event_id <> '' AND position(',' IN event_id) = 0
    LIMIT :lim""")
_VERSIONS = text(
    "SELECT entity, source_id, version, seen_at FROM source_version "
    "WHERE source_id = ANY(:ids) ORDER BY seen_at LIMIT :lim"
)
_DELIVERED = text(
    "SELECT target, entity, entity_id, last_outbox_id, last_event_id, external_id, "
    "delivered_at FROM egress_delivery WHERE entity_id = ANY(:ids) LIMIT :lim"
)
_PARKED = text(
    "SELECT id, target, entity, entity_id, attempts, error_code, last_error, record_headers, "
    "next_attempt_at, parked_at FROM egress_parked WHERE entity_id = ANY(:ids) "
    "ORDER BY id LIMIT :lim"
)
_EXCHANGE = text(
    "SELECT principal, node, message_no, object, response, received_at "
    "FROM onec_exchange_message WHERE response->>'request_id' = ANY(:requests) LIMIT :lim"
)
# The stored answer names the request: the bridge's JSON answers carry "request_id" (the
# X-Request-Id header is added outside the stored answer). A table kept a day (the keys' TTL).
_IDEMPOTENCY = text("""
    SELECT i.principal, i.path, i.key, i.status, i.created_at, r AS request_id
      FROM ingress_idempotency i, unnest(CAST(:requests AS text[])) r
     WHERE i.body IS NOT NULL
       AND position(convert_to('"request_id":"' || r || '"', 'UTF8') IN i.body) > 0
     LIMIT :lim""")
_REPLAYS = text(
    "SELECT id, at, actor, action, target, details FROM ops_audit "
    "WHERE action = 'dlq.replay' AND target = ANY(:topics) ORDER BY id LIMIT :lim"
)


async def _rows(conn, statement, **params) -> list[dict]:
    result = await conn.execute(statement, {**params, "lim": LIMIT})
    return [dict(r) for r in result.mappings().all()]


async def collect(engine: AsyncEngine, ident: str, *, dlq: Any = None) -> Timeline:
    """Everything known about ``ident``. ``dlq``: a callable (entity ids, event ids, request
    ids) -> DLQ rows (:func:`dlq_rows`), run in a thread; None reads no DLQ topic."""
    import asyncio

    ident = ident.strip()
    found = Found()
    async with engine.connect() as conn:
        crosswalk = await _rows(conn, _CROSSWALK, ids=[ident])
        traced = (
            {r["event_id"] for r in await _rows(conn, _BY_TRACE, trace=ident.lower())}
            if _TRACE_ID.match(ident.lower())
            else set()
        )
        ids = {ident} | {r["canonical_id"] for r in crosswalk} | traced
        outbox = await _rows(conn, _OUTBOX, ids=sorted(ids))
        # An event or request id names the entity through its outbox rows (or its calls).
        calls = await _rows(conn, _CALLS, events=[ident], requests=[ident])
        names_event = any(o["event_id"] == ident for o in outbox) or any(
            c["event_id"] == ident for c in calls
        )
        names_request = any(
            _headers(o["headers"]).get("x-request-id") == ident for o in outbox
        ) or any(c["request_id"] == ident for c in calls)
        entity_ids = ids | {o["entity_id"] for o in outbox}
        names_external = any(
            r["external_id"] == ident and r["canonical_id"] != ident for r in crosswalk
        )
        if names_event or names_request or names_external or traced:
            entity_ids.discard(ident)
        entity_ids -= traced
        found.outbox = await _rows(conn, _OUTBOX, ids=sorted(entity_ids | {ident}))
        found.crosswalk = await _rows(conn, _CROSSWALK, ids=sorted(entity_ids | {ident}))
        events = (
            {o["event_id"] for o in found.outbox} | ({ident} if names_event else set()) | traced
        )
        requests = (
            {_headers(o["headers"]).get("x-request-id", "") for o in found.outbox}
            | {c["request_id"] for c in calls}
            | ({ident} if names_request else set())
        ) - {""}
        found.calls = await _rows(
            conn, _CALLS, events=sorted(events | {ident}), requests=sorted(requests | {ident})
        )
        found.versions = await _rows(conn, _VERSIONS, ids=sorted(entity_ids))
        found.delivered = await _rows(conn, _DELIVERED, ids=sorted(entity_ids))
        found.parked = await _rows(conn, _PARKED, ids=sorted(entity_ids))
        found.exchange = await _rows(conn, _EXCHANGE, requests=sorted(requests))
        found.idempotency = await _rows(conn, _IDEMPOTENCY, requests=sorted(requests))
        if dlq is not None:
            found.dlq = await asyncio.to_thread(dlq, entity_ids, events, requests)
            topics = sorted({d["topic"] for d in found.dlq})
            if topics:
                found.replays = await _rows(conn, _REPLAYS, topics=topics)
    return assemble(ident, found, entity_ids=entity_ids, event_ids=events, request_ids=requests)


def dlq_matches(entry: Any, entity_ids: set[str], events: set[str], requests: set[str]) -> bool:
    """Whether a DLQ record is about the entity: its key, its ``ce_id`` or its request id."""
    headers = {k.lower(): v.decode("utf-8", "replace") for k, v in entry.headers}
    return (
        entry.entity in entity_ids
        or headers.get("ce_id", "") in events
        or headers.get("x-request-id", "") in requests
    )


def dlq_rows(settings: Any, *, idle_timeout_s: float = 5.0):
    """The DLQ reader for :func:`collect`: scans every declared DLQ topic (mmstream/dlq/reader.py)."""

    def read(entity_ids: set[str], events: set[str], requests: set[str]) -> list[dict]:
        from mmstream.dlq.reader import DlqReader
        from mmstream.dlq.topics import dlq_topics
        from mmstream.errors import TopicMissing
        from mmstream.topics import load_catalog

        out = []
        for topic in dlq_topics(settings, load_catalog(settings.topics_file)):
            try:
                entries = list(DlqReader(settings, topic, idle_timeout_s=idle_timeout_s).scan())
            except TopicMissing:
                continue
            for e in entries:
                if dlq_matches(e, entity_ids, events, requests):
                    failed = e.failed_at
                    out.append(
                        {
                            "topic": e.topic,
                            "partition": e.partition,
                            "offset": e.offset,
                            "key": e.entity,
                            "code": e.code,
                            "stage": e.stage,
                            "failed_at": failed.isoformat() if failed else None,
                            "message": e.failure.get("error.message", "")[:500],
                        }
                    )
        return out

    return read
