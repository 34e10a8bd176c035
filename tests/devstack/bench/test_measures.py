"""Pure parts of the egress and latency benchmarks: what counts as a measured call."""

from __future__ import annotations

import pytest

from devstack.bench.egress import steady_window
from devstack.bench.latency import add_times, quantile
from devstack.bench.processes import BenchError


def call(method, ts, *, status=200, in_batch=True, params=None):
    return {"method": method, "ts": ts, "status": status, "in_batch": in_batch, "params": params}


def test_add_times_takes_the_first_successful_create_per_xml_id():
    calls = [
        call("catalog.product.list", 1.0, params={"filter": {"xmlId": "a"}}),
        call("catalog.product.add", 2.0, status=503, params={"fields": {"xmlId": "a"}}),
        call("catalog.product.add", 3.0, params={"fields": {"xmlId": "a"}}),
        call("catalog.product.add", 4.0, params={"fields": {"xmlId": "a"}}),  # never twice, but
        call("catalog.product.add", 5.0, params={"fields": {"xmlId": "b"}}),
        call("batch", 5.5, in_batch=False, params={"cmd": {}}),
        call("catalog.product.add", 6.0, params=None),
    ]
    assert add_times(calls) == {"a": 3.0, "b": 5.0}


def test_quantile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.5) in (50.0, 51.0)
    assert quantile(values, 0.99) == 99.0
    assert quantile([7.0], 0.99) == 7.0
    with pytest.raises(BenchError):
        quantile([], 0.5)


def test_steady_window_skips_the_burst_and_counts_503s():
    # 60 batch requests 0.5 s apart (2/s), each carrying 50 commands; two 503s late on.
    calls = []
    for i in range(60):
        ts = i * 0.5
        calls.append(call("batch", ts, in_batch=False, status=503 if i in (50, 55) else 200))
        calls += [call("catalog.product.list", ts) for _ in range(50)]
    window = steady_window(calls, burst=10)
    assert window.requests_per_s == pytest.approx(2.0, rel=0.05)
    assert window.commands_per_s == pytest.approx(100.0, rel=0.05)
    assert window.status_503 == 2


def test_steady_window_refuses_a_run_inside_the_burst():
    calls = [call("batch", 0.0, in_batch=False)] + [call("x.y", 0.0) for _ in range(20)]
    with pytest.raises(BenchError):
        steady_window(calls, burst=50)
