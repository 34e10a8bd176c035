"""The path a source record takes up to ``norm.<entity>``, without the broker and database,
for the bound tests: the bridge's validation, the raw record's bytes, the sink's
normalization, the stored row read back, and the outbox relay's Avro encoding.

A record ends in exactly one of three ways, and any other exception is a bug the tests
report: rejected by the bridge (an HTTP 4xx, nothing published), dead-lettered by the sink
(InvalidRecord with a reason), or published (every entity encodes with its schema).
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, reduce
from pathlib import Path
from typing import Any

import fastavro

from connectors.onec.objects import lookup
from connectors.onec.validation import validate
from mmstream.avro_gen import avro_record
from mmstream.errors import InvalidRecord
from mmstream.models.base import Canonical
from stages.normalize.registry import Context, normalizers

AVRO = Path(__file__).resolve().parents[3] / "avro"

REJECTED, DEAD_LETTERED, PUBLISHED = "rejected by the bridge", "dead-lettered", "published"

Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class Case:
    """One accepted source shape: a real (or real-shaped) record and where it goes."""

    label: str
    seed: dict[str, Any]
    topic: str  # logical raw topic (its normalizer; products are an entity like the others)
    ctx: Context = field(default_factory=Context)
    onec_object: str | None = None  # the 1С object it is POSTed as (the bridge validates it)


@cache
def schema(entity: str) -> Any:
    return fastavro.parse_schema(json.loads((AVRO / f"{entity}.avsc").read_text("utf-8")))


def encode(entity: Canonical) -> bytes:
    """What the outbox relay does with a stored version: the row (JSON, decimals as
    Decimal) read back into its model, then Avro with the committed schema."""
    buf = io.BytesIO()
    envelope = {"event_id": str(uuid.uuid4()), "changed_at": datetime.now(UTC)}
    row = json.loads(entity.model_dump_json(), parse_float=Decimal)
    again = type(entity).model_validate(row)
    fastavro.schemaless_writer(
        buf, schema(type(entity).ENTITY), {**avro_record(again), **envelope, "revision": 1}
    )
    return buf.getvalue()


def outcome(case: Case, doc: Any) -> tuple[str, str]:
    """(how the record ended, the DLQ reason or the entities published)."""
    if case.onec_object is not None:
        try:
            validate(lookup(case.onec_object), doc)
        except InvalidRecord as exc:
            return REJECTED, str(exc)
    raw = json.dumps(doc).encode()  # the bytes the bridge published (ensure_ascii: escapes)
    try:
        entities = normalizers()[case.topic](json.loads(raw), {}, case.ctx)
    except InvalidRecord as exc:
        reason = str(exc)
        assert reason.strip(), f"{case.label}: a DLQ record needs a reason"
        return DEAD_LETTERED, reason
    for entity in entities:
        encode(entity)
    return PUBLISHED, ", ".join(type(e).__name__ for e in entities)


def paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every place of a record a value can be put: each field, each tabular-section line
    and each field of a line or nested object."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            if isinstance(item, (dict, list)):
                yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:1]):  # the lines share one shape
            yield (*prefix, index)
            if isinstance(item, (dict, list)):
                yield from paths(item, (*prefix, index))


def mutated(seed: dict[str, Any], where: Path_, value: Any) -> dict[str, Any]:
    """A copy of ``seed`` with ``value`` at ``where`` (one field changed, the rest real)."""
    out = copy.copy(seed)
    target: Any = out
    for step in where[:-1]:  # copy only along the path: the seed stays untouched
        target[step] = copy.copy(target[step])
        target = target[step]
    target[where[-1]] = copy.deepcopy(value)
    return out


def nested(depth: int) -> Any:
    return reduce(lambda inner, _: [inner], range(depth), 0)


POISON: tuple[Any, ...] = (
    None,
    False,
    2**63,
    1e300,
    float("nan"),
    float("-inf"),
    "NaN",
    "Infinity",
    "1E+30",
    "-1e17",
    "1e-999999999",
    "12,50",
    "",
    "a\x00b",
    "\ud800",
    "0001-01-01T00:30:00+03:00",
    "9999-12-31T23:59:59-03:00",
    "not-a-guid",
    [],
    {"a": [None]},
    nested(200),
)
"""Curated values every field gets in turn (each stands for a kind of trouble: huge and
tiny numbers, NaN-like, the empty string, NUL, unpaired surrogates, dates out of range in
UTC, wrong types, deep nesting); the hypothesis tests add arbitrary JSON."""

MORE_POISON: tuple[Any, ...] = (
    True,
    0,
    -1,
    -(2**63) - 1,
    10**40,
    -1e300,
    1e-300,
    float("inf"),
    "nan",
    "-Infinity",
    "sNaN",
    "1e300",
    "1e17",
    "1e18",
    "1e-300",
    "0E+1000",
    "1e999999999",
    "9" * 30,
    "0.00005",
    "100|RUB",
    " ",
    "\x00",
    "😀",
    "ё" * 5000,
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "2024-02-30T00:00:00",
    "00000000-0000-0000-0000-000000000000",
    "2d4fe756-48a4-11ec-ad72-000c29b45b09",
    "Y",
    "N",
    [1, "2"],
    [{"LineNumber": "1"}],
    [{"LineNumber": "99999999999999999999999"}],
)


def sweep(
    case: Case, values: tuple[Any, ...] = POISON, check: Callable[[str, str], None] | None = None
) -> dict[str, int]:
    """Every value of ``values`` in every field of ``case.seed``; counts by outcome."""
    counts = {REJECTED: 0, DEAD_LETTERED: 0, PUBLISHED: 0}
    for where in paths(case.seed):
        for value in values:
            try:
                end, detail = outcome(case, mutated(case.seed, where, value))
            except Exception as exc:
                raise AssertionError(
                    f"{case.label}: {where} = {value!r:.80} raised {type(exc).__name__}: {exc}"
                ) from exc
            counts[end] += 1
            if check is not None:
                check(end, detail)
    return counts
