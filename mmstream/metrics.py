"""Every Prometheus metric the project exports, declared in one place.

Label values come from closed sets (routes, outcomes, error codes, entity names), never
from ids or free text, so the series count stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

INGRESS_REQUESTS = Counter(
    "mm_ingress_requests_total", "HTTP requests at the bridge", ["source", "route", "status"]
)
INGRESS_LATENCY = Histogram(
    "mm_ingress_request_duration_seconds", "Bridge request latency", ["source", "route"],
    buckets=_LATENCY,
)
INGRESS_RECORDS = Counter(
    "mm_ingress_records_total", "Records accepted or rejected by the bridge",
    ["source", "entity", "outcome"],
)
PRODUCE_LATENCY = Histogram(
    "mm_produce_duration_seconds", "Time until the broker acknowledged a produce call",
    ["client"], buckets=_LATENCY,
)
SINK_RECORDS = Counter(
    "mm_sink_records_total", "Records handled by the sink, by outcome "
    "(upserted, duplicate, stale, invalid)", ["entity", "outcome"],
)
SINK_BATCH_SIZE = Histogram(
    "mm_sink_batch_size", "Records per sink batch", ["entity"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
SINK_BATCH_LATENCY = Histogram(
    "mm_sink_batch_duration_seconds", "Sink batch processing time (database + publish)",
    ["entity"], buckets=_LATENCY,
)
SINK_RETRIES = Counter(
    "mm_sink_retries_total", "Sink batches retried after a transient error", ["entity", "reason"]
)
OUTBOX_PUBLISHED = Counter(
    "mm_outbox_published_total", "Outbox entries published to norm/egress topics", ["entity"]
)
EGRESS_CALLS = Counter(
    "mm_egress_calls_total", "Calls to target APIs", ["target", "method", "status"]
)
EGRESS_DELIVERIES = Counter(
    "mm_egress_deliveries_total", "Egress events by outcome "
    "(delivered, retried, dead_lettered, skipped)", ["target", "entity", "outcome"],
)
DLQ_RECORDS = Counter(
    "mm_dlq_records_total", "Records written to a dead-letter topic", ["stage", "reason"]
)
UP = Gauge("mm_up", "1 while the process is serving", ["component"])


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on ``port`` from a background thread (workers; the bridge mounts it)."""
    if port:
        start_http_server(port, addr=host)
