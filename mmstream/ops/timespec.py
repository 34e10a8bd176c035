"""Parsing the time arguments of `groups reset` (pure functions)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from mmstream.ops.errors import InvalidResetSpec

# java.time.Duration.parse, which kafka-consumer-groups uses: days and a time part only
# (months and years have no fixed length).
_DURATION = re.compile(
    r"^(?P<sign>[-+]?)P(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration such as ``PT1H``, ``P1DT12H`` or ``PT90S``."""
    match = _DURATION.match(text.strip())
    if (
        not match
        or text.strip().upper().endswith(("P", "T"))
        or not any(match.group(k) for k in ("d", "h", "m", "s"))
    ):
        raise InvalidResetSpec(f"{text!r} is not an ISO 8601 duration like PT1H, PT30M or P1DT2H")
    delta = timedelta(
        days=int(match["d"] or 0),
        hours=int(match["h"] or 0),
        minutes=int(match["m"] or 0),
        seconds=float(match["s"] or 0),
    )
    return -delta if match["sign"] == "-" else delta


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date-time with an explicit offset (``Z`` or ``+03:00``).

    A time without an offset is refused: 1С and Bitrix24 run in Moscow time, servers in
    UTC, and guessing wrong moves the group by hours.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidResetSpec(f"{text!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise InvalidResetSpec(f"{text!r} has no UTC offset: write e.g. {text}Z or {text}+03:00")
    return when


def to_epoch_ms(when: datetime) -> int:
    """Milliseconds since the epoch, the unit of Kafka record timestamps."""
    return int(when.timestamp() * 1000)
