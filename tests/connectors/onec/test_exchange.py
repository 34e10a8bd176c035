"""Reading the exchange-plan headers of a 1С batch post (pure)."""

from __future__ import annotations

import pytest

from connectors.onec.exchange import ExchangeHeadersInvalid, body_digest, parse_headers


def as_received(value: str) -> str:
    """What Starlette hands over for raw UTF-8 header bytes (decoded as Latin-1)."""
    return value.encode().decode("latin-1")


def test_neither_header_means_no_message():
    assert parse_headers(None, None) is None


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("CB", "CB"),
        (as_received("ЦБ"), "ЦБ"),
        ("%D0%A6%D0%91", "ЦБ"),
        ("  Филиал 2 ", "Филиал 2"),
    ],
)
def test_node_codes(node, expected):
    assert parse_headers(node, "42") == (expected, 42)


@pytest.mark.parametrize(
    ("node", "number"),
    [
        ("ЦБ", None),
        (None, "1"),
        ("", "1"),
        (" ", "1"),
        ("x" * 151, "1"),
        ("a\tb", "1"),
        ("ЦБ", "-1"),
        ("ЦБ", "1.5"),
        ("ЦБ", "seven"),
        ("ЦБ", "9" * 19),
    ],
)
def test_malformed(node, number):
    with pytest.raises(ExchangeHeadersInvalid):
        parse_headers(node, number)


def test_body_digest_tells_bodies_apart():
    assert body_digest(b"[1]") == body_digest(b"[1]") != body_digest(b"[2]")
