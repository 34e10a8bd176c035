"""Benchmarks for ``mmctl bench`` / ``make bench``.

Every figure is measured next to a baseline taken in the same run on the same machine
(runs vary ±10–15 %, so numbers from different runs are not comparable; see the shared
performance notes). The package starts everything it needs itself (embedded broker,
embedded PostgreSQL, schema registry, the processes under test) and stops it at the end.

Modules, one job each:
  runner       orchestration: start services, run each benchmark, write the report
  services     embedded broker + PostgreSQL + schema registry for one bench run
  processes    child processes (start, readiness, stop, log tail)
  cpu          CPU accounting: per process, and other programs competing (a disturbed run)
  workload     1С product records: the duplicate / stale mix and their raw-topic form
  producing    a plain confluent-kafka producer: topic pre-fill and the raw-producer baseline
  pipeline     sink-worker throughput vs a no-op Faust agent and the plain merge ceiling
  noop_agent   the no-op Faust agent (run as a child process)
  ingress      bridge throughput/latency vs a bare FastAPI app and the raw producer
  baseline_app the bare FastAPI + AckedProducer app (run as a child process)
  loadgen      the HTTP load generator (run as child processes)
  report       measurements, medians, the printed table and the JSON file
"""
