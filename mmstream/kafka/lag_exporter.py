"""Consumer lag as Prometheus gauges, exported by each worker for its own consumer group.

A daemon thread recomputes ``mm_consumer_lag{group,topic,partition}`` every interval with a
:class:`~mmstream.kafka.lag.LagProbe` (right on Apache Kafka and on the embedded broker).
It runs off the event loop because librdkafka calls block. Every replica of a group reports
every partition of the group's topics, so the figure survives any one replica's death;
queries take ``max by (group, topic, partition)``.
"""

from __future__ import annotations

import logging
import threading
import time

from mmstream.kafka.lag import LagProbe
from mmstream.metrics import CONSUMER_LAG, CONSUMER_LAG_UPDATED
from mmstream.settings import KafkaSettings, Settings
from mmstream.topics import load_catalog

log = logging.getLogger(__name__)


class LagExporter:
    """Keeps the lag gauges of one group current from a background thread."""

    def __init__(
        self, kafka: KafkaSettings, group: str, partitions: dict[str, int], interval_s: float = 10.0
    ) -> None:
        self.kafka = kafka
        self.group = group
        self.partitions = partitions
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe: LagProbe | None = None

    @classmethod
    def for_app(cls, app, settings: Settings, interval_s: float = 10.0) -> LagExporter:
        """The exporter of a Faust app: its id is the group, its agents' topics the sources
        (partition counts from the topic file)."""
        catalog = load_catalog(settings.topics_file)
        by_physical = {
            settings.topic(name): spec.partitions for name, spec in catalog.topics.items()
        }
        names = {t for agent in app.agents.values() for t in agent.get_topic_names()}
        return cls(
            settings.kafka,
            app.conf.id,
            {t: by_physical[t] for t in sorted(names) if t in by_physical},
            interval_s,
        )

    def start(self) -> LagExporter:
        """Start the thread (a daemon: it never holds the process open)."""
        self._thread = threading.Thread(
            target=self._run, name=f"lag-exporter-{self.group}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and close the probe."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def update(self) -> dict[tuple[str, int], int]:
        """Recompute the gauges once; returns (topic, partition) -> lag."""
        if self._probe is None:
            self._probe = LagProbe(self.kafka, self.partitions)
        self._probe.refresh()
        ends = self._probe.end_offsets()
        done = self._probe.committed(self.group)
        lags = {}
        for (topic, partition), high in ends.items():
            if high < 0:  # no fetch answered yet: unknown, not zero
                continue
            lags[(topic, partition)] = max(0, high - done.get((topic, partition), 0))
            CONSUMER_LAG.labels(self.group, topic, str(partition)).set(lags[(topic, partition)])
        CONSUMER_LAG_UPDATED.labels(self.group).set(time.time())
        return lags

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.update()
                except Exception as exc:  # noqa: BLE001 — a broker hiccup: try next interval
                    log.warning(
                        "consumer lag not updated",
                        extra={"group": self.group, "error": str(exc)[:300]},
                    )
                self._stop.wait(self.interval_s)
        finally:
            if self._probe is not None:
                self._probe.close()


# ---- the independent exporter (`python -m mmstream.kafka.lag_exporter`) -----------------
# The workers' own gauges stop when no replica runs, exactly when lag matters most; this
# process exports the same series for every group from outside the workers (a Deployment /
# compose service of its own). Queries take `max by (group, topic, partition)` anyway.


def default_groups(settings: Settings) -> list[str]:
    """The pipeline's consumer groups as the workers derive them from the settings (the
    enrichment's has no setting of its own: the sink group plus a suffix)."""
    return [
        settings.streams.entity_sink_group,
        f"{settings.streams.sink_group}-enrich-bitrix24",
        settings.streams.egress_group,
    ]


def group_partitions(settings: Settings, group: str) -> dict[str, int]:
    """The declared topics ``group`` has committed offsets on (what kafka-consumer-groups.sh
    --describe lists for a group without members), with their partition counts."""
    from mmstream.kafka.lag import admin_for, committed_offsets

    catalog = load_catalog(settings.topics_file)
    by_physical = {settings.topic(name): spec.partitions for name, spec in catalog.topics.items()}
    topics = {t for t, _ in committed_offsets(admin_for(settings.kafka), group)}
    return {t: by_physical[t] for t in sorted(topics) if t in by_physical}


def main(argv: list[str] | None = None) -> int:
    """Serve mm_consumer_lag for the given groups (default: the pipeline's) on /metrics."""
    import argparse
    import signal

    from mmstream import log as mmlog
    from mmstream import metrics
    from mmstream.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m mmstream.kafka.lag_exporter", description=main.__doc__
    )
    parser.add_argument("--port", type=int, default=9106, help="metrics port (default 9106)")
    parser.add_argument("--host", default="0.0.0.0", help="metrics address (default 0.0.0.0)")  # noqa: S104 — scraped from outside
    parser.add_argument(
        "--group",
        action="append",
        default=None,
        help="consumer group (repeatable; default: the pipeline's three groups)",
    )
    parser.add_argument(
        "--interval-s",
        type=float,
        default=None,
        help="seconds between updates (default MM_STREAMS__LAG_INTERVAL_S)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    mmlog.setup("lag-exporter", settings.log_level, settings.log_format)
    groups = args.group or default_groups(settings)
    interval = args.interval_s or settings.streams.lag_interval_s
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    metrics.serve(args.port, args.host)
    metrics.UP.labels("lag-exporter").set(1)
    log.info("lag exporter serving", extra={"groups": ",".join(groups), "port": args.port})
    exporters: dict[str, LagExporter] = {}
    while not stop.is_set():
        for group in groups:
            try:
                # Re-read every round: a group that starts on a new topic shows up by itself.
                partitions = group_partitions(settings, group)
                current = exporters.get(group)
                if current is None or current.partitions != partitions:
                    if current is not None:
                        _close(current)
                    current = exporters[group] = LagExporter(settings.kafka, group, partitions)
                if partitions:
                    current.update()
            except Exception as exc:  # noqa: BLE001 — a broker hiccup: try next interval
                log.warning(
                    "consumer lag not updated", extra={"group": group, "error": str(exc)[:300]}
                )
        stop.wait(interval)
    for exporter in exporters.values():
        _close(exporter)
    return 0


def _close(exporter: LagExporter) -> None:
    """Release the probe of an exporter driven by ``update()`` (no thread of its own)."""
    if exporter._probe is not None:  # noqa: SLF001 — the class's own module
        exporter._probe.close()  # noqa: SLF001


if __name__ == "__main__":
    raise SystemExit(main())
