"""``mmctl bench``: start the services, run every benchmark, print and write the report.

Exit status: 0 when every measurement was made, whatever the numbers (there are no
thresholds: a slow machine is not an error); non-zero (via BenchError, printed by mmctl as
one line) when something could not be measured. Ctrl-C or SIGTERM stops everything the run
started and exits 130.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from devstack.bench import egress, entities, ingress, latency, pipeline
from devstack.bench.cpu import CpuWatch
from devstack.bench.processes import BenchError, describe
from devstack.bench.report import Report
from devstack.bench.services import BenchServices
from mmstream.settings import Settings


def _params(
    quick: bool,
) -> tuple[
    pipeline.PipelineParams,
    ingress.IngressParams,
    entities.EntityParams,
    egress.EgressParams,
    latency.LatencyParams,
]:
    # Sized so that `make bench` takes about 4-5 minutes and `--quick` under a minute on the
    # quiet 2-core development machine (a busy machine stretches both: the report says so).
    if quick:
        return (
            pipeline.PipelineParams(records=10_000, repetitions=1, timeout_s=90),
            ingress.IngressParams(
                single_requests=3_000,
                batch_records=10_000,
                repetitions=1,
                warmup_requests=300,
                timeout_s=90,
            ),
            entities.EntityParams(records=10_000, repetitions=1, timeout_s=150),
            # The default budget's burst (50 requests) carries ~1,250 changes: a steady
            # window needs well more than that, and the ceiling more than burst / rate.
            egress.EgressParams(records=3_000, ceiling_s=40, repetitions=1, timeout_s=180),
            latency.LatencyParams(
                rate_per_s=10, duration_s=15, warmup=20, repetitions=1, timeout_s=90
            ),
        )
    return (
        pipeline.PipelineParams(records=50_000, repetitions=3, timeout_s=180),
        ingress.IngressParams(
            single_requests=15_000,
            batch_records=40_000,
            repetitions=3,
            warmup_requests=1_000,
            timeout_s=180,
        ),
        entities.EntityParams(records=30_000, repetitions=3, timeout_s=300),
        # 2 commands per change: past the burst, 5,000 changes keep the default budget
        # busy for over a minute.
        egress.EgressParams(records=5_000, ceiling_s=60, repetitions=2, timeout_s=400),
        latency.LatencyParams(
            rate_per_s=10, duration_s=60, warmup=50, repetitions=3, timeout_s=180
        ),
    )


def _say(line: str) -> None:
    print(line, flush=True)


def run_benchmarks(
    settings: Settings,
    *,
    out_dir: str | Path = "bench-results",
    quick: bool = False,
    only: set[str] | None = None,
) -> Report:
    """Run the benchmarks (all, or the sections named in ``only``); print the table; write
    ``bench-<UTC>.json`` and ``latest.json``."""
    pipe_params, ingress_params, entity_params, egress_params, latency_params = _params(quick)
    report = Report(
        quick=quick,
        parameters={
            "repetitions": pipe_params.repetitions,
            "statistic": "median of the repetitions; ratio = median / baseline median",
            "pipeline": asdict(pipe_params),
            "ingress": asdict(ingress_params),
            "entities": asdict(entity_params),
            "egress": asdict(egress_params),
            "latency": asdict(latency_params),
            "log_level": settings.log_level,
            "streams.batch_max": settings.streams.batch_max,
            "streams.batch_within_s": settings.streams.batch_within_s,
            "kafka.linger_ms": settings.kafka.linger_ms,
        },
    )
    report.notes += [
        f"{report.machine['cores']} cores shared by every process of the run (broker, PostgreSQL, "
        "the process under test, load generators): figures are for this machine only, and "
        "comparable only with their baseline from the same run",
        "Kafka is the memory-only embedded broker (Tansu, no fsync) and PostgreSQL runs with "
        "fsync off: optimistic for disk-backed production services",
    ]
    services = BenchServices(settings)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    interrupted = False
    try:
        _say(
            f"mmctl bench{' --quick' if quick else ''}: starting broker, PostgreSQL and schema "
            f"registry (work dir {services.work_dir})"
        )
        services.start()
        sections = [
            (
                "pipeline",
                f"pipeline: one sink worker draining {pipe_params.records:,} raw records",
                lambda: pipeline.run(services, pipe_params, _say),
            ),
            (
                "entities",
                f"entities: one entity sink worker draining {entity_params.records:,} "
                "mixed raw records vs plain upsert",
                lambda: entities.run(services, entity_params, _say),
            ),
            (
                "ingress",
                "ingress: bridge vs baselines",
                lambda: ingress.run(services, ingress_params, _say),
            ),
            (
                "egress",
                f"egress: one egress worker delivering {egress_params.records:,} product "
                "changes to the Bitrix24 emulator vs the packed-client ceiling",
                lambda: egress.run(services, egress_params, _say),
            ),
            (
                "latency",
                f"latency: 1С POST -> Bitrix24 create at {latency_params.rate_per_s:g} "
                "products/s through bridge, sink, egress and the emulator",
                lambda: latency.run(services, latency_params, _say),
            ),
        ]
        for name, title, section in sections:
            if only and name not in only:
                continue
            _say(f"\n{title}")
            watch = CpuWatch()
            try:
                report.measurements += section()
            except Exception as exc:  # noqa: BLE001 — one section failing must not hide the others
                reason = describe(exc)
                report.errors.append(f"{name}: {reason}")
                _say(f"  {name} FAILED: {reason.splitlines()[0]}")
                if not isinstance(exc, BenchError):
                    traceback.print_exc()
            usage = watch.usage()
            report.cpu[name] = {
                "wall_s": round(usage.wall_s, 1),
                "bench_core_s": round(usage.bench_s, 1),
                "other_core_s": round(usage.other_s, 1),
                "other_share": round(usage.other_share, 3),
            }
            if note := usage.note(name):
                report.notes.append(note)
    except KeyboardInterrupt:
        interrupted = True
        _say("\ninterrupted: stopping everything the bench started…")
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave servers running.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            if report.all_errors() and not interrupted:
                # The temp folder goes away; the logs that explain the errors must not.
                kept = services.keep_logs(Path(out_dir) / f"bench-{report.stamp}-logs")
                report.notes.append(
                    f"the logs of this run (named in the errors) are kept in {kept}"
                )
            services.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if interrupted:
        _say("stopped.")
        sys.exit(130)
    path = report.write(Path(out_dir))
    _say(f"\nResults ({time.monotonic() - started:.0f} s):\n")
    _say(report.table())
    _say(f"\nwritten: {path} and {Path(out_dir) / 'latest.json'}")
    errors = report.all_errors()
    if errors:
        raise BenchError(f"{len(errors)} measurement(s) could not be made; see the report above")
    return report


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
