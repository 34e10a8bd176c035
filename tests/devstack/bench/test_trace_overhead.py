"""The integration log's cost, measured on the real PostgreSQL (numbers printed with -s;
MM_TRACE_BENCH_CALLS / MM_TRACE_BENCH_ROWS scale it up for a report)."""

from __future__ import annotations

import asyncio
import os

from devstack.bench.trace_overhead import measure, purge_rate
from mmstream.db.engine import async_engine


def test_every_logged_call_is_written_and_the_purge_deletes_them_all(settings):
    calls = int(os.environ.get("MM_TRACE_BENCH_CALLS", "300"))
    rows = int(os.environ.get("MM_TRACE_BENCH_ROWS", "5000"))

    async def main():
        engine = async_engine(settings, pool_size=2)
        try:
            return await measure(engine, calls), await purge_rate(engine, settings, rows)
        finally:
            await engine.dispose()

    overhead, (purged, seconds) = asyncio.run(main())
    assert overhead.written == calls  # nothing dropped, nothing doubled
    assert purged == rows
    print(
        f"\n{calls} calls: bare {overhead.bare_us:.0f} us/call, +headers {overhead.headers_us:.0f}, "
        f"+integration log {overhead.logged_us:.0f} us/call; writer caught up {overhead.drain_s:.3f}s "
        f"after the last call\npurge: {purged} rows in {seconds:.2f}s = {purged / seconds:.0f} rows/s"
    )
