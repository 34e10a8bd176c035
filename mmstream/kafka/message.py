"""Where a confluent-kafka record is: its topic, partition and offset, never None.

confluent-kafka types ``Message.topic()``, ``partition()`` and ``offset()`` as Optional
because librdkafka leaves them unset on some error events (``msg.error()`` set). A record
that was fetched or acknowledged without an error always has all three, so None there is a
bug (ours or the library's): it raises here, with the record's whereabouts, instead of
turning into a wrong offset further on.
"""

from __future__ import annotations

from confluent_kafka import Message


class MissingPosition(RuntimeError):
    """A record without an error came without its topic, partition or offset."""


def position(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a record fetched or acknowledged without an error."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise MissingPosition(
            f"kafka record without its position (topic={topic!r}, partition={partition!r}, "
            f"offset={offset!r}, error={msg.error()!r}): only error events may lack one"
        )
    return topic, partition, offset
