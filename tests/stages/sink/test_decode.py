"""decode: a raw record that is not a JSON object is Unnormalizable (dead-lettered), whatever
the way it is broken — never an exception that stops the sink."""

import pytest

from mmstream.errors import InvalidRecord, dead_letterable
from stages.sink.entity_sink import decode
from stages.source_record import SourceRecord


def _rec(value):
    return SourceRecord("raw.onec.product", 0, 1, b"k", value, [])


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 100_000,  # deeper than the parser recurses
        b'{"Code": ' + b"9" * 5000 + b"}",  # an integer longer than Python converts
        b"\xff\xfe{}",  # not UTF-8
        b"{",  # not JSON
        b"[1, 2]",  # JSON, not an object
    ],
)
def test_broken_values_are_invalid_records(value):
    with pytest.raises(InvalidRecord) as caught:
        decode(_rec(value))
    assert dead_letterable(caught.value)


def test_a_deletion_and_an_object_decode():
    assert decode(_rec(None)) == {"_deleted": True, "_key": "k"}
    assert decode(_rec(b'{"a": 1}')) == {"a": 1}
