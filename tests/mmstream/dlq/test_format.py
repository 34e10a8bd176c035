"""Dead-letter records: original bytes and headers, every dlq.* header, same partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from mmstream.dlq.format import PREFIX, Failure, dead_letter, failure_headers
from mmstream.errors import BrokerUnavailable, InvalidRecord
from stages.source_record import SourceRecord

DLQ_HEADERS = {
    "stage",
    "error.class",
    "error.code",
    "error.message",
    "error.retriable",
    "attempts",
    "first_failure",
    "last_failure",
    "source.topic",
    "source.partition",
    "source.offset",
}
FIRST = datetime(2026, 11, 22, 4, 0, 0, 123000, tzinfo=UTC)
LAST = FIRST + timedelta(minutes=5, seconds=3)
VALUE = '{"Ref_Key": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09", "Description": "Мойка"}'.encode()


def source(**overrides) -> SourceRecord:
    fields = dict(
        topic="t1.raw.onec.product",
        partition=4,
        offset=1234,
        key=b"f02ce7b3-e3b3-11eb-b4ad-000c29b45b09",
        value=VALUE,
        headers=[
            ("ce_id", b"a1"),
            ("x-request-id", b"req-1"),
            ("ce_subject", "Мойка".encode()),
            ("ce_id", b"a2"),
        ],
    )
    fields.update(overrides)
    return SourceRecord(**fields)


def failure(
    error: BaseException = InvalidRecord("Ref_Key: Field required"), attempts: int = 3
) -> Failure:
    return Failure(error=error, attempts=attempts, first_failure=FIRST, last_failure=LAST)


def test_key_value_and_original_headers_are_kept_in_order():
    rec = source()
    out = dead_letter(rec, failure(), stage="sink", topic="t1.dlq.normalize")
    assert out.topic == "t1.dlq.normalize"
    assert out.key == rec.key and out.value == rec.value  # the original bytes, untouched
    originals = [h for h in out.headers if not h[0].startswith(PREFIX)]
    assert originals == rec.headers  # repeated headers and their order included


def test_every_dlq_header_is_added_with_its_value():
    out = dead_letter(source(), failure(), stage="sink", topic="dlq")
    added = [k[len(PREFIX) :] for k, _ in out.headers if k.startswith(PREFIX)]
    assert sorted(added) == sorted(DLQ_HEADERS) and len(added) == len(DLQ_HEADERS)
    assert all(isinstance(v, bytes) for _, v in out.headers)
    assert failure_headers(out.headers) == {
        "stage": "sink",
        "error.class": "InvalidRecord",
        "error.code": "invalid_record",
        "error.message": "Ref_Key: Field required",
        "error.retriable": "false",
        "attempts": "3",
        "first_failure": "2026-11-22T04:00:00.123000+00:00",
        "last_failure": "2026-11-22T04:05:03.123000+00:00",
        "source.topic": "t1.raw.onec.product",
        "source.partition": "4",
        "source.offset": "1234",
    }


def test_times_parse_back_to_the_failure_times():
    parsed = failure_headers(dead_letter(source(), failure(), stage="sink", topic="dlq").headers)
    assert datetime.fromisoformat(parsed["first_failure"]) == FIRST
    assert datetime.fromisoformat(parsed["last_failure"]) == LAST


@pytest.mark.parametrize("partition", [0, 3, 5])
def test_the_dlq_record_goes_to_the_source_partition(partition):
    out = dead_letter(source(partition=partition), failure(), stage="egress", topic="dlq")
    assert out.partition == partition
    assert failure_headers(out.headers)["source.partition"] == str(partition)


def test_a_re_dead_letter_replaces_the_old_dlq_headers():
    first = dead_letter(source(), failure(attempts=1), stage="sink", topic="t1.dlq.normalize")
    # Replayed from the DLQ (keeping its headers), failing again at another stage.
    replayed = source(topic="t1.dlq.normalize", partition=4, offset=7, headers=first.headers)
    second = dead_letter(
        replayed,
        failure(BrokerUnavailable("no ack"), attempts=8),
        stage="egress",
        topic="t1.dlq.egress.bitrix24.product",
    )
    keys = [k for k, _ in second.headers]
    assert len([k for k in keys if k.startswith(PREFIX)]) == len(DLQ_HEADERS)  # no duplicates
    parsed = failure_headers(second.headers)
    assert parsed["stage"] == "egress" and parsed["attempts"] == "8"
    assert parsed["error.class"] == "BrokerUnavailable" and parsed["error.retriable"] == "true"
    assert parsed["source.topic"] == "t1.dlq.normalize" and parsed["source.offset"] == "7"
    # The original, non-dlq headers survive both trips.
    assert [h for h in second.headers if not h[0].startswith(PREFIX)] == source().headers
    assert second.value == VALUE and second.key == source().key


def test_a_third_party_error_is_named_by_its_own_class_and_classified():
    out = dead_letter(
        source(),
        failure(psycopg.OperationalError("server closed the connection")),
        stage="sink",
        topic="dlq",
    )
    parsed = failure_headers(out.headers)
    assert parsed["error.class"] == "OperationalError"
    assert parsed["error.code"] == "database_unavailable" and parsed["error.retriable"] == "true"
    assert parsed["error.message"] == "server closed the connection"

    parsed = failure_headers(
        dead_letter(source(), failure(ValueError("bug")), stage="sink", topic="dlq").headers
    )
    assert parsed["error.class"] == "ValueError"
    assert parsed["error.code"] == "permanent" and parsed["error.retriable"] == "false"


def test_long_messages_are_truncated_and_non_ascii_survives():
    out = dead_letter(
        source(), failure(InvalidRecord("Наименование: " + "ж" * 5000)), stage="sink", topic="dlq"
    )
    message = failure_headers(out.headers)["error.message"]
    assert len(message) == 2000
    assert message.startswith("Наименование: жжж")


def test_records_without_key_value_or_headers_can_be_dead_lettered():
    out = dead_letter(
        source(key=None, value=None, headers=[]), failure(), stage="sink", topic="dlq"
    )
    assert out.key is None and out.value is None
    assert {k for k, _ in out.headers} == {PREFIX + h for h in DLQ_HEADERS}


def test_failure_headers_ignore_other_headers():
    assert failure_headers([("ce_id", b"x"), ("dlq.stage", b"sink"), ("dlqx", b"no")]) == {
        "stage": "sink"
    }
    assert failure_headers([]) == {}


def test_the_source_record_is_not_modified():
    rec = source()
    before = list(rec.headers)
    dead_letter(rec, failure(), stage="sink", topic="dlq")
    assert rec.headers == before
