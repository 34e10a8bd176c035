"""Parsing reset times."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mmstream.ops.errors import InvalidResetSpec
from mmstream.ops.timespec import parse_duration, parse_instant, to_epoch_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H", timedelta(hours=1)),
        ("PT30M", timedelta(minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("P2D", timedelta(days=2)),
        ("-PT1H", -timedelta(hours=1)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1h", "P", "PT", "P1M", "P1Y", "PT1H2", ""])
def test_bad_durations_are_refused(text):
    with pytest.raises(InvalidResetSpec):
        parse_duration(text)


def test_instants_need_an_offset():
    assert to_epoch_ms(parse_instant("2023-11-14T22:13:20Z")) == 1_700_000_000_000
    assert to_epoch_ms(parse_instant("2023-11-15T01:13:20+03:00")) == 1_700_000_000_000
    with pytest.raises(InvalidResetSpec, match="no UTC offset"):
        parse_instant("2023-11-14T22:13:20")
    with pytest.raises(InvalidResetSpec):
        parse_instant("yesterday")
