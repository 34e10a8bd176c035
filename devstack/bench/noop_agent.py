"""The "Faust agent that does nothing" baseline, run as a child process:

    python -m devstack.bench.noop_agent --expected N --result PATH   (settings from MM_*)

It is the sink worker minus the work: the same Faust app factory, topic declaration,
runner (uvloop) and batching (``noack_take(streams.batch_max, within=streams.batch_within_s)``,
1000 / 0.5 s by default, acknowledging every event), so the pipeline/noop ratio isolates
what the sink adds to Faust's own per-event cost.
When it has seen ``expected`` events it writes to PATH the size of its first batch, when
that batch was done and when the last one was done (epoch seconds), then keeps running
until the bench stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import faust

from mmstream import log
from mmstream.settings import Settings, get_settings
from mmstream.topics import load_catalog
from stages.app import create_app, source_topic


def build(
    settings: Settings, expected: int, result: Path, topics: tuple[str, ...] = ("raw.onec.product",)
) -> faust.App:
    """A Faust app with one agent that acknowledges and counts the events of ``topics``
    (logical raw topic names: one agent over all of them, as the entity sink has)."""
    catalog = load_catalog(settings.topics_file)
    app = create_app(settings, settings.streams.sink_group)
    if len(topics) == 1:
        raw = source_topic(app, settings, catalog, topics[0])
    else:
        raw = app.topic(
            *(settings.topic(t) for t in topics),
            value_serializer="raw",
            key_serializer="raw",
            allow_empty=True,
        )

    @app.agent(raw, name="bench.noop")
    async def noop(stream):
        count, first_size, first_done, written = 0, 0, 0.0, False
        # The sink's batching, so that both wait equally for a last, partial batch.
        async for events in stream.noack_take(
            settings.streams.batch_max, within=settings.streams.batch_within_s
        ):
            for event in events:
                await stream.ack(event)
            count += len(events)
            if not first_size:
                first_size, first_done = len(events), time.time()
            if count >= expected and not written:
                _write_result(
                    result,
                    {
                        "count": count,
                        "first_batch_records": first_size,
                        "first_batch_done_at": first_done,
                        "last_batch_done_at": time.time(),
                    },
                )
                written = True

    return app


def _write_result(path: Path, doc: dict) -> None:
    # Write then rename: the bench polls for the file and must never read half of it.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="devstack.bench.noop_agent")
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument(
        "--topic",
        action="append",
        default=None,
        help="a logical raw topic to read (repeatable; default raw.onec.product)",
    )
    args = parser.parse_args(argv)
    from stages.worker import run

    settings = get_settings()
    log.setup("bench-noop-agent", settings.log_level, settings.log_format)
    app = build(settings, args.expected, args.result, tuple(args.topic or ("raw.onec.product",)))
    run(app, settings, 0)


if __name__ == "__main__":
    main()
