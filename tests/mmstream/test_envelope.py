"""CloudEvents binary-mode envelope and the stable change id."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from mmstream.envelope import (
    CONTENT_TYPE,
    REQUEST_ID,
    CloudEvent,
    change_id,
    decode_headers,
    now_iso,
)

REF = "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09"


# ------------------------------------------------------------------ change_id


def test_change_id_is_stable_across_calls_and_processes():
    first = change_id("product", REF, "AAAAAQAAAAA=")
    assert first == change_id("product", REF, "AAAAAQAAAAA=")
    # A UUIDv5 fixed by the namespace: the bridge, the sink and the relay of any process and
    # any release must agree on it, so it is pinned here.
    parsed = uuid.UUID(first)
    assert parsed.version == 5 and str(parsed) == first
    assert first == str(
        uuid.uuid5(
            uuid.UUID("6f1c7a52-9a7e-4f5e-8d35-2b4f0e6b7a10"), f"product\x1f{REF}\x1fAAAAAQAAAAA="
        )
    )


def test_change_id_differs_per_entity_id_and_version():
    ids = {
        change_id("product", REF, "AAAAAQAAAAA="),
        change_id("product", REF, "AAAAAgAAAAA="),
        change_id("product", "f02ce7b3-e3b3-11eb-b4ad-000c29b45b0a", "AAAAAQAAAAA="),
        change_id("counterparty", REF, "AAAAAQAAAAA="),
    }
    assert len(ids) == 4


def test_change_id_does_not_confuse_field_boundaries():
    # Plain concatenation would make these equal.
    assert change_id("product", "ab", "c") != change_id("product", "a", "bc")
    assert change_id("productx", "a", "b") != change_id("product", "xa", "b")


def test_change_id_distinct_over_many_versions():
    ids = {change_id("product", REF, f"v{i}") for i in range(2000)}
    assert len(ids) == 2000


def test_change_id_is_case_sensitive_in_the_version():
    # DataVersion is opaque base64: case is significant.
    assert change_id("product", REF, "AAAAAQAAAAA=") != change_id("product", REF, "aaaaaqaaaaa=")


# ------------------------------------------------------------------ headers


def _event(**overrides) -> CloudEvent:
    fields = dict(
        id=change_id("product", REF, "AAAAAQAAAAA="),
        source="/onec/ut11",
        type="ru.mastermobile.product.upsert.v1",
        subject=REF,
        time="2026-11-22T04:00:00.000Z",
        request_id="req-42",
    )
    fields.update(overrides)
    return CloudEvent(**fields)


def test_headers_follow_the_cloudevents_kafka_binding():
    headers = _event().headers()
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers)
    as_dict = dict(headers)
    assert len(as_dict) == len(headers)  # no header twice
    assert as_dict == {
        "ce_specversion": b"1.0",
        "ce_id": change_id("product", REF, "AAAAAQAAAAA=").encode(),
        "ce_source": b"/onec/ut11",
        "ce_type": b"ru.mastermobile.product.upsert.v1",
        "ce_subject": REF.encode(),
        "ce_time": b"2026-11-22T04:00:00.000Z",
        CONTENT_TYPE: b"application/json",
        REQUEST_ID: b"req-42",
    }


def test_headers_round_trip_through_decode_headers_and_from_headers():
    event = _event()
    assert CloudEvent.from_headers(decode_headers(event.headers())) == event


def test_non_ascii_attributes_round_trip_as_utf8():
    event = _event(subject="Номенклатура/Мойка", source="/1С/УТ11", content_type="application/avro")
    headers = event.headers()
    assert dict(headers)["ce_subject"] == "Номенклатура/Мойка".encode()
    assert CloudEvent.from_headers(decode_headers(headers)) == event


def test_request_id_is_optional():
    event = _event(request_id="")
    headers = event.headers()
    assert REQUEST_ID not in dict(headers)
    assert len(headers) == 7
    back = CloudEvent.from_headers(decode_headers(headers))
    assert back == event and back.request_id == ""


def test_from_headers_fills_missing_attributes_with_empty_strings():
    event = CloudEvent.from_headers({"ce_id": "x"})
    assert event == CloudEvent(
        id="x", source="", type="", subject="", time="", content_type="", request_id=""
    )
    assert CloudEvent.from_headers({}).id == ""


def test_from_headers_ignores_unrelated_headers():
    headers = [*_event().headers(), ("mm.outbox_id", b"17"), ("dlq.stage", b"sink")]
    assert CloudEvent.from_headers(decode_headers(headers)) == _event()


# ------------------------------------------------------------------ decode_headers


def test_decode_headers_accepts_pairs_and_mappings():
    pairs = [("a", b"1"), ("b", bytearray(b"2")), ("c", "3")]
    assert decode_headers(pairs) == {"a": "1", "b": "2", "c": "3"}
    assert decode_headers({"a": b"1", "c": "3"}) == {"a": "1", "c": "3"}


def test_decode_headers_of_nothing_is_empty():
    assert decode_headers(None) == {}
    assert decode_headers([]) == {}


def test_decode_headers_turns_none_values_into_empty_strings():
    # confluent-kafka gives None for a header sent without a value.
    assert decode_headers([("ce_id", None)]) == {"ce_id": ""}


def test_decode_headers_last_value_wins():
    assert decode_headers([("ce_id", b"first"), ("ce_id", b"second")]) == {"ce_id": "second"}


def test_decode_headers_replaces_invalid_utf8_instead_of_failing():
    assert decode_headers([("x", b"ok\xff")]) == {"x": "ok\ufffd"}


# ------------------------------------------------------------------ now_iso


def test_now_iso_is_utc_rfc3339_with_milliseconds():
    stamp = now_iso()
    assert stamp.endswith("Z") and "+" not in stamp
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset().total_seconds() == 0
    assert len(stamp.split(".")[1]) == len("000Z")


@pytest.mark.parametrize("field", ["id", "source", "type", "subject", "time"])
def test_every_attribute_travels_in_its_own_header(field):
    # Changing one attribute changes exactly the matching header.
    base = dict(_event().headers())
    changed = dict(_event(**{field: "changed"}).headers())
    assert {k for k in base if base[k] != changed[k]} == {f"ce_{field}"}
    assert changed[f"ce_{field}"] == b"changed"
