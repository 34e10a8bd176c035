"""free_port hands out ports below the kernel's ephemeral range (mmstream/serve.py): a port the
OS picks by binding to 0 is an ephemeral one, which any outgoing connection can take before the
service binds it (the bridge of `mmctl run` once failed to start on such a port while another
test session ran beside it)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mmstream.serve import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not RANGE.exists(), reason="the ephemeral range is read from Linux's /proc")
def test_free_ports_are_bindable_distinct_and_below_the_ephemeral_range():
    ephemeral_from = int(RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(100)]
    assert len(set(ports)) == 100
    assert all(1024 < p < ephemeral_from for p in ports)
    for port in ports[:10]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
