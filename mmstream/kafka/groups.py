"""Consumer-group membership as the broker reports it."""

from __future__ import annotations

import asyncio
from typing import Any

from mmstream.kafka.lag import admin_for


async def group_size(kafka: Any, group: str, timeout_s: float = 10.0) -> int | None:
    """Members of consumer group ``group`` (``kafka``: KafkaSettings), None when unknown.

    Brokers that do not report members (the embedded one lists none) give None, and a
    caller keeps what it knew (the Bitrix24 budget: its last split).
    """

    def describe() -> int | None:
        # admin_for routes librdkafka's own log lines through logging: raw stderr lines
        # would break the one-JSON-object-per-line log contract.
        admin = admin_for(kafka)
        futures = admin.describe_consumer_groups([group], request_timeout=timeout_s)
        description = futures[group].result(timeout=timeout_s)
        return len(description.members) or None

    return await asyncio.to_thread(describe)
