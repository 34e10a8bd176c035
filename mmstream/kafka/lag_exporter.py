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

    def __init__(self, kafka: KafkaSettings, group: str, partitions: dict[str, int],
                 interval_s: float = 10.0) -> None:
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
        by_physical = {settings.topic(name): spec.partitions for name, spec in catalog.topics.items()}
        names = {t for agent in app.agents.values() for t in agent.get_topic_names()}
        return cls(settings.kafka, app.conf.id, {t: by_physical[t] for t in sorted(names) if t in by_physical},
                   interval_s)

    def start(self) -> LagExporter:
        """Start the thread (a daemon: it never holds the process open)."""
        self._thread = threading.Thread(target=self._run, name=f"lag-exporter-{self.group}", daemon=True)
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
                    log.warning("consumer lag not updated", extra={"group": self.group, "error": str(exc)[:300]})
                self._stop.wait(self.interval_s)
        finally:
            if self._probe is not None:
                self._probe.close()
