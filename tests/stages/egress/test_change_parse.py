"""Change.parse: every malformed egress record is an InvalidRecord (dead-lettered), never an
exception that stops the worker."""

import pytest

from mmstream.errors import InvalidRecord, dead_letterable
from stages.egress.delivery import Change
from stages.outbox.relay import OUTBOX_ID
from stages.source_record import SourceRecord


def _record(value: bytes) -> SourceRecord:
    return SourceRecord(
        "egress.bitrix24.product",
        0,
        7,
        b"k",
        value,
        [(OUTBOX_ID, b"1"), ("ce_type", b"ru.mastermobile.product.upsert.v1")],
    )


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 100_000,  # deeper than the JSON parser recurses
        b"{" + b'"a":{' * 50_000,  # deep and truncated
        b"\xff\xfe",  # not UTF-8
        b"null",
        b"{}",
        b'{"id": ' + b"9" * 5000 + b"}",  # an integer longer than Python parses
    ],
)
def test_malformed_records_are_invalid(value):
    with pytest.raises(InvalidRecord) as caught:
        Change.parse("product", _record(value))
    assert dead_letterable(caught.value)


def test_a_good_record_parses():
    change = Change.parse("product", _record(b'{"id": "a1", "event_id": "e"}'))
    assert (change.entity_id, change.change, change.outbox_id) == ("a1", "upsert", 1)
