"""Serving an ASGI app in the foreground (``mmctl bridge``, and the development servers),
with a taken port reported as a clear message, not a traceback."""

from __future__ import annotations

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


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (for tests and ephemeral services)."""
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
