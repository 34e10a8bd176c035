"""Serving an ASGI app in the foreground with uvicorn, with a clear port-in-use message."""

from __future__ import annotations

import uvicorn

from mmstream.embedded.ports import ensure_port_free


def serve(app, host: str, port: int, what: str, setting: str) -> None:
    """Run ``app`` until SIGINT/SIGTERM; PortInUse if the port is taken."""
    ensure_port_free(host, port, what, setting)
    uvicorn.run(app, host=host, port=port, loop="uvloop", log_config=None, access_log=False,
                timeout_graceful_shutdown=5)
