"""``mmctl trace <trace id>``: an upstream W3C trace id (a 1С or Bitrix24 request's
traceparent, kept on the change and continued by its calls) finds the change's timeline."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from mmstream.db.engine import async_engine
from mmstream.trace import journal as journals
from mmstream.trace.context import traceparent
from mmstream.trace.timeline import collect


def test_the_timeline_is_found_from_an_upstream_trace_id(settings):
    entity, event, other = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    trace_id = uuid.uuid4().hex
    upstream = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    continued = traceparent(event, "r1", upstream)
    assert continued.split("-")[1] == trace_id and continued != upstream

    async def main():
        engine = async_engine(settings, pool_size=2)
        journal = journals.Journal.from_settings(engine, settings.retention)
        try:
            async with engine.begin() as conn:
                for ev, ident, tp in ((event, entity, upstream), (other, str(uuid.uuid4()), "")):
                    await conn.execute(
                        text(
                            "INSERT INTO outbox (event_id, entity, entity_id, change, version, "
                            "source_topic, source_partition, source_offset, payload, headers) VALUES "
                            "(:e, 'product', :id, 'upsert', 'v1', 't', 0, 1, '{}', "
                            "jsonb_build_object('traceparent', CAST(:tp AS text)))"
                        ),
                        {"e": ev, "id": ident, "tp": tp},
                    )
            journal.offer(
                journals.Entry(
                    target="bitrix24",
                    operation="catalog.product.add",
                    http_method="POST",
                    url="u",
                    latency_ms=1.0,
                    status=200,
                    event_id=event,
                    request_id="r1",
                    traceparent=continued,
                )
            )
            await journal.flush()
            by_trace = (await collect(engine, trace_id)).as_dict()
            by_upper = (await collect(engine, trace_id.upper())).as_dict()
            return by_trace, by_upper
        finally:
            await journal.aclose()
            await engine.dispose()

    by_trace, by_upper = asyncio.run(main())
    for timeline in (by_trace, by_upper):
        assert timeline["entity_ids"] == [entity] and timeline["event_ids"] == [event]
        assert sorted(s["kind"] for s in timeline["steps"]) == ["egress", "outbox"], timeline
