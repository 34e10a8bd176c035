"""Every Prometheus metric the project exports, declared in one place.

Label values come from closed sets (routes, outcomes, error codes, entity names), never
from ids or free text, so the series count stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

INGRESS_REQUESTS = Counter(
    "mm_ingress_requests_total", "HTTP requests at the bridge", ["source", "route", "status"]
)
INGRESS_LATENCY = Histogram(
    "mm_ingress_request_duration_seconds",
    "Bridge request latency",
    ["source", "route"],
    buckets=_LATENCY,
)
INGRESS_RECORDS = Counter(
    "mm_ingress_records_total",
    "Records accepted or rejected by the bridge",
    ["source", "entity", "outcome"],
)
PRODUCE_LATENCY = Histogram(
    "mm_produce_duration_seconds",
    "Time until the broker acknowledged a produce call",
    ["client"],
    buckets=_LATENCY,
)
# Outcomes: upserted (a new version stored) and the skips by reason: duplicate (same
# version), stale (older than the stored one), not_owner (the source does not own the
# changed fields), unchanged (no field changed); invalid (dead-lettered).
SINK_RECORDS = Counter(
    "mm_sink_records_total",
    "Records handled by the sink, by outcome "
    "(upserted, duplicate, stale, not_owner, unchanged, invalid)",
    ["entity", "outcome"],
)
SINK_BATCH_SIZE = Histogram(
    "mm_sink_batch_size",
    "Records per sink batch",
    ["entity"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
SINK_BATCH_LATENCY = Histogram(
    "mm_sink_batch_duration_seconds",
    "Sink batch processing time (database + publish)",
    ["entity"],
    buckets=_LATENCY,
)
# Every repeat after a retriable error (mmstream.retry): stage is sink, enrich or egress;
# code is the error class's `code` (a closed set). Dependency waits (database_unavailable,
# broker_unavailable) and target refusals (bitrix24_*, onec_*) share the counter.
RETRIES = Counter(
    "mm_retries_total",
    "Work repeated after a retriable error, by stage, entity and error code",
    ["stage", "entity", "code"],
)
OUTBOX_PUBLISHED = Counter(
    "mm_outbox_published_total", "Outbox entries published to norm/egress topics", ["entity"]
)
EGRESS_CALLS = Counter(
    "mm_egress_calls_total", "Calls to target APIs", ["target", "method", "status"]
)
EGRESS_DELIVERIES = Counter(
    "mm_egress_deliveries_total",
    "Egress events by outcome (delivered, retried, dead_lettered, skipped)",
    ["target", "entity", "outcome"],
)
DLQ_RECORDS = Counter(
    "mm_dlq_records_total", "Records written to a dead-letter topic", ["stage", "reason"]
)
UP = Gauge("mm_up", "1 while the process is serving", ["component"])
# The circuit state gauge itself is CIRCUIT_STATE (mm_egress_circuit_state) below.
CIRCUIT_TRANSITIONS = Counter(
    "mm_circuit_transitions_total", "Circuit breaker state changes", ["target", "to"]
)
RATE_BUDGET = Gauge(
    "mm_rate_budget_per_second",
    "Requests/s this process currently allows itself per target "
    "(its share of the target's limit, lowered after rate-limit refusals)",
    ["target"],
)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on ``port`` from a background thread (workers; the bridge mounts it)."""
    if port:
        start_http_server(port, addr=host)


# ---- operations (issue 6): agents, outbox, egress, lag, cash SLA ---------------------------
# Per Faust agent (closed set: the agent names in stages/), fed by observe_batch().
AGENT_RECORDS = Counter(
    "mm_agent_records_total", "Events an agent processed and acknowledged", ["agent"]
)
AGENT_BATCH_SIZE = Histogram(
    "mm_agent_batch_size",
    "Events per batch an agent took",
    ["agent"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
AGENT_BATCH_LATENCY = Histogram(
    "mm_agent_batch_duration_seconds",
    "Time from taking a batch to acknowledging it",
    ["agent"],
    buckets=(*_LATENCY, 30, 60, 120, 300),
)
# Computed from the outbox table by each sink worker for the source partitions it owns, so
# summing over workers counts every entry once.
OUTBOX_BACKLOG = Gauge(
    "mm_outbox_backlog",
    "Outbox entries not yet published (partitions this worker owns)",
    ["entity"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "mm_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox entry (0: none)",
    ["entity"],
)
EGRESS_CALL_LATENCY = Histogram(
    "mm_egress_call_duration_seconds",
    "Target API call latency",
    ["target", "method"],
    buckets=(*_LATENCY, 30, 60),
)
# Codes are the error classes' `code` (mmstream.errors / connectors.*.errors): a closed set,
# e.g. bitrix24_overload_limit, bitrix24_query_limit.
EGRESS_ERRORS = Counter(
    "mm_egress_errors_total",
    "Errors answered by target APIs, by classified code",
    ["target", "code"],
)
RATE_LIMIT_WAIT = Histogram(
    "mm_egress_rate_limit_wait_seconds",
    "Time each call waited for the client's own rate-limit slot (0 when a slot was free)",
    ["target"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
# Set by mmstream.circuit.CircuitBreaker, one series per target.
CIRCUIT_STATE = Gauge(
    "mm_egress_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["target"]
)
CIRCUIT_OPENED = Counter(
    "mm_egress_circuit_opened_total",
    "Times a target's circuit opened, by error code",
    ["target", "reason"],
)
# Exported by every worker for its own consumer group (mmstream.kafka.lag_exporter); all
# replicas of a group report the same partitions, so aggregate with max by partition.
CONSUMER_LAG = Gauge(
    "mm_consumer_lag",
    "Records of a partition the group has not committed yet",
    ["group", "topic", "partition"],
)
CONSUMER_LAG_UPDATED = Gauge(
    "mm_consumer_lag_updated_timestamp_seconds",
    "When mm_consumer_lag was last computed",
    ["group"],
)
# Cash operations (ПКО cash_receipt, РКО cash_expense, advance_report): declared here for
# the alert rules; the cash egress to 1С (issue 5) feeds them.
CASH_SLA_DEVIATIONS = Counter(
    "mm_cash_sla_deviations_total",
    "Cash documents not posted in 1С within the SLA",
    ["document"],
)
CASH_POSTING_LATENCY = Histogram(
    "mm_cash_posting_duration_seconds",
    "Time from a cash document's arrival to its posting in 1С",
    ["document"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400),
)
# The end-to-end reconcile (stages/reconcile/): drift found by its last run, set per run
# (kinds: missing, deleted, differs, relinked, orphan, newer_at_source), and runs by outcome.
RECONCILE_DRIFT = Gauge(
    "mm_reconcile_drift",
    "Objects the last reconcile found out of step, by entity, target (bitrix24, onec) and kind",
    ["entity", "target", "kind"],
)
RECONCILE_RUNS = Counter(
    "mm_reconcile_runs_total",
    "Reconcile runs by outcome (ok, failed)",
    ["outcome"],
)
RECONCILE_LAST_RUN = Gauge(
    "mm_reconcile_last_run_timestamp_seconds",
    "When the last complete reconcile finished",
)


@contextmanager
def observe_batch(agent: str, size: int) -> Iterator[None]:
    """Count a batch an agent processes inside the block (only if the block completes)."""
    started = time.perf_counter()
    yield
    AGENT_BATCH_SIZE.labels(agent).observe(size)
    AGENT_BATCH_LATENCY.labels(agent).observe(time.perf_counter() - started)
    AGENT_RECORDS.labels(agent).inc(size)
