"""The harness itself (tests/support): stopping a test's processes, reading a topic back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from confluent_kafka import Producer

from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog
from tests.support.processes import Proc, eventually
from tests.support.stack import Pipeline
from tests.support.topics import count_records

# A child that needs `GRACE_S` to shut down on SIGTERM, as a Faust worker needs seconds.
GRACE_S = 1.0
_SLOW_TO_STOP = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    f"    time.sleep({GRACE_S}); print('stopped cleanly', flush=True); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('ready', flush=True)\n"
    "while True: time.sleep(0.05)\n"
)


class _Child(Proc):
    def __init__(self, name: str, log_dir) -> None:
        super().__init__(name, [], {}, log_dir)
        self.args = ["-c", _SLOW_TO_STOP]

    def start(self) -> _Child:
        self.stopped = False
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self


def test_a_pipeline_stops_its_processes_gracefully_and_at_once(tmp_path):
    pipe = object.__new__(Pipeline)  # only its processes matter here: no broker, no topics
    pipe.procs = {n: _Child(n, tmp_path).start() for n in ("a", "b", "c")}
    eventually(lambda: all("ready" in p.tail() for p in pipe.procs.values()), 30)
    started = time.monotonic()
    pipe.stop()
    took = time.monotonic() - started
    # Each one ran its SIGTERM handler to the end (no SIGKILL) ...
    assert [(p.popen.returncode, "stopped cleanly" in p.tail()) for p in pipe.procs.values()] == [
        (0, True)
    ] * 3
    assert all(p.stopped for p in pipe.procs.values())
    # ... and the shutdowns overlapped: one after another would take 3 * GRACE_S.
    assert took < 2 * GRACE_S, took


def test_reading_without_a_quiet_window_returns_exactly_what_the_topic_holds(settings):
    apply(settings, load_catalog(settings.topics_file))
    topic = settings.topic("raw.onec.product")
    producer = Producer({**settings.kafka.client_config(), "acks": "all"})

    def write(n: int, start: int = 0) -> None:
        for i in range(start, start + n):  # spread over the partitions by key
            producer.produce(topic, f"v{i}".encode(), key=f"k{i}".encode())
        assert producer.flush(30) == 0

    write(7)
    got = count_records(settings, "raw.onec.product", quiet_s=0)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(7))
    assert len({m.partition() for m in got}) > 1

    # expect_at_least still waits for records that are not there yet.
    later: list = []
    reader = threading.Thread(
        target=lambda: later.extend(
            count_records(settings, "raw.onec.product", expect_at_least=10, quiet_s=0)
        )
    )
    reader.start()
    write(3, start=7)
    reader.join(30)
    assert sorted(m.value() for m in later) == sorted(f"v{i}".encode() for i in range(10))
