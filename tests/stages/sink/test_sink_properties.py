"""Property (design.md invariant 9): whatever a record holds, pushing it through normalize,
merge and the relay's encoding ends in a stored row with its published change, or in a DLQ
record with a reason — never in an exception that would stop the partition. Real broker,
PostgreSQL and schema registry; few examples, each a real batch."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mmstream.models.price_type import PriceType
from stages.outbox.relay import DEAD_LETTER
from tests.stages.sink.harness import Sinks, dlq, sink_settings, sql

# Values of every JSON type and the extremes a 1С number or text can reach (or not).
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e300, -1e300, 1e-300, 0.1, 10**30, 99999999999999999.99]),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
ANY = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.text(max_size=300),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
TEXT = st.one_of(st.text(max_size=2000), st.just("\x00"), st.just("a" * 100_000), ANY)
# What a normalizer that checked nothing could hand the merge: the right types, any value.
DECIMALS = st.one_of(
    st.decimals(),
    st.sampled_from(
        [
            Decimal("1e300"),
            Decimal("-1e-300"),
            Decimal("NaN"),
            Decimal("Infinity"),
            Decimal("1e20"),
            Decimal("0.00001"),
        ]
    ),
)
STRINGS = st.one_of(st.text(max_size=300), st.just("nul \x00 inside"), st.just("я" * 50_000))
SETTINGS = hsettings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def price_types(draw) -> dict:
    """A ВидыЦен record whose markup is any number, with at most one other field wild: most
    get past normalization to reach the merge and the relay, the rest probe normalization."""
    record = {
        "Ref_Key": str(uuid.uuid4()),
        "DataVersion": "AAAAAQAAAAA=",
        "DeletionMark": False,
        "Code": draw(st.text(max_size=50)),
        "Description": draw(st.text(min_size=1, max_size=200)),
        "ПроцентСкидкиНаценки": draw(NUMBERS),
        "Комментарий": draw(st.text(max_size=200)),
        "ЦенаВключаетНДС": draw(st.booleans()),
    }
    wild = draw(st.sampled_from([None, None, *record]))
    if wild is not None:
        record[wild] = draw(TEXT)
    return record


@st.composite
def leaked(draw) -> dict:
    """What an unchecked normalizer passes on: JSON that :func:`unchecked` builds a PriceType
    from without validation."""
    return {
        "id": str(uuid.uuid4()),
        "name": draw(STRINGS),
        "code": draw(STRINGS),
        "markup": str(draw(DECIMALS)),
        "comment": draw(STRINGS),
    }


def unchecked(value, headers, ctx) -> list[PriceType]:
    """A normalizer with every bound forgotten (model_construct skips validation): stands in
    for any value that slips through normalization."""
    return [
        PriceType.model_construct(
            id=uuid.UUID(value["id"]),
            source="onec",
            version="v1",
            name=value["name"],
            code=value["code"],
            markup_percent=Decimal(value["markup"]),
            comment=value["comment"],
        )
    ]


def key_of(record: dict) -> str:
    """The raw record's key: its id as the bridge keys it, or a stand-in when wild."""
    ref = record.get("Ref_Key", record.get("id"))
    return ref if isinstance(ref, str) and ref else json.dumps(ref)


def push_all(s, strategy, normalizers=None) -> list[str]:
    """Push every generated batch through the entity sink; returns the raw keys sent."""
    loop = asyncio.new_event_loop()
    sinks = loop.run_until_complete(_build(s, normalizers))
    sent: list[str] = []

    @SETTINGS
    @given(st.lists(strategy, min_size=1, max_size=6))
    def push(records):
        batch = [
            sinks.record(
                "raw.onec.price_type", json.dumps(r, ensure_ascii=False).encode(), key_of(r)
            )
            for r in records
        ]
        sent.extend(key_of(r) for r in records)
        loop.run_until_complete(sinks.entities.handle(batch))  # never raises

    try:
        push()
    finally:
        loop.run_until_complete(sinks.close())
        loop.close()
    return sent


def check_every_record_is_accounted_for(s, sent: list[str]) -> dict[str, int]:
    stored = {row[0] for row in sql(s, "SELECT id::text FROM price_type")}
    outbox = {
        row[0]: row[1:]
        for row in sql(
            s, "SELECT entity_id, published_at IS NOT NULL, headers ? %s FROM outbox", DEAD_LETTER
        )
    }
    assert all(published for published, _ in outbox.values())  # nothing left blocking
    normalize = {e.entity: e for e in dlq(s, "dlq.normalize")}
    relay = {e.entity: e for e in dlq(s, "dlq.relay")}
    outcomes = {"published": 0, "normalize": 0, "merge": 0, "relay": 0}
    for ref in sent:
        if ref in stored and ref in outbox and not outbox[ref][1]:
            outcomes["published"] += 1
            continue
        entry = relay.get(ref) if ref in outbox and outbox[ref][1] else normalize.get(ref)
        assert entry is not None, f"{ref}: neither stored and published nor dead-lettered"
        assert entry.stage and entry.failure["error.class"] and entry.failure["error.message"]
        outcomes[entry.stage] += 1
    return outcomes


def test_any_record_ends_stored_and_published_or_dead_lettered_with_a_reason(
    settings, registry_url
):
    s = sink_settings(settings, registry_url)
    outcomes = check_every_record_is_accounted_for(s, push_all(s, price_types()))
    assert outcomes["published"] + outcomes["normalize"] > 0


def test_any_value_that_slips_through_normalization_ends_published_or_dead_lettered(
    settings, registry_url
):
    s = sink_settings(settings, registry_url)
    outcomes = check_every_record_is_accounted_for(
        s, push_all(s, leaked(), {"raw.onec.price_type": unchecked})
    )
    assert outcomes["normalize"] == 0  # nothing was checked: every record reached the merge


async def _build(s, normalizers) -> Sinks:
    return Sinks(s, normalizers)
