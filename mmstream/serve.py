"""Serving an ASGI app in the foreground (``mmctl bridge``, and the development servers),
with a taken port reported as a clear message, not a traceback."""

from __future__ import annotations

import random
import socket

import uvicorn

from mmstream.errors import ConfigurationError


class PortInUse(ConfigurationError):
    """A port a server needs is taken. Stop the other program or pick another port."""

    code = "port_in_use"


def ensure_port_free(host: str, port: int, what: str, setting: str) -> None:
    """Raise PortInUse naming the component and the setting that moves it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortInUse(
                f"port {port} on {host} is already in use, so the {what} cannot start. "
                f"Stop whatever listens there, or set {setting} to a free port."
            ) from None


#: Where :func:`free_port` looks: above the registered services most machines run, below the
#: kernel's ephemeral range (Linux default 32768-60999).
_FREE_PORTS_FROM = 20000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0  # not Linux: no range known


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (for tests and ephemeral services), taken from below the
    kernel's ephemeral range: a port the OS picks (bind to 0) is an ephemeral one, and until
    the service binds it any outgoing connection on the machine may take it as its source
    port — with a whole stack of services starting, and other test sessions beside, that
    happens. A port is handed out once per process."""
    top = _ephemeral_start()
    if top > _FREE_PORTS_FROM + 1000:
        for port in random.sample(range(_FREE_PORTS_FROM, top), 200):
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve(app, host: str, port: int, what: str, setting: str) -> None:
    """Run ``app`` until SIGINT/SIGTERM; PortInUse if the port is taken."""
    ensure_port_free(host, port, what, setting)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
