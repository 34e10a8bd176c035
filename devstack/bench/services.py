"""The services one bench run owns: embedded broker, embedded PostgreSQL, schema registry.

Started the way the test harness starts them (free ports, a temp folder, PostgreSQL with
fsync off, a migrated template database cloned for every fresh database) so that a bench
run never touches a developer's `mmctl run` stack or its data, and leaves nothing behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
from pydantic import SecretStr

from devstack.bench.processes import ChildSet, mmctl, wait_http
from devstack.stack.broker import EmbeddedBroker
from devstack.stack.env import settings_env
from devstack.stack.postgres import EmbeddedPostgres
from mmstream.db.migrate import upgrade
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.settings import Settings, sqlalchemy_url
from mmstream.topics import load_catalog

log = logging.getLogger(__name__)

TEMPLATE_DB = "mm_bench_template"


class BenchServices:
    """Broker + PostgreSQL + registry in a temp folder; ``close()`` stops and removes all."""

    def __init__(self, base: Settings) -> None:
        self.base = base
        self.work_dir = Path(tempfile.mkdtemp(prefix="mmbench-"))
        self.log_dir = self.work_dir / "logs"
        self.log_dir.mkdir()
        # Children get TMPDIR here: Faust makes a data folder per app in the temp folder,
        # and those must go away with the run.
        self.tmp_dir = self.work_dir / "tmp"
        self.tmp_dir.mkdir()
        self.children = ChildSet()
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.registry_url = ""

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> BenchServices:
        """Start broker and PostgreSQL, migrate a template database, start the registry."""
        self.broker = EmbeddedBroker(free_port(), log_path=self.log_dir / "broker.log").start()
        self.postgres = EmbeddedPostgres(
            self.work_dir / "pgdata", free_port(), durable=False
        ).start()
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        upgrade(sqlalchemy_url(self.postgres.url(TEMPLATE_DB)))
        registry_db = self.new_database("registry")
        port = free_port()
        env = {**self.child_env(self.settings(database_url=registry_db)), "MM_LOG_LEVEL": "WARNING"}
        registry = self.children.add(
            mmctl("registry", ["registry", "--port", str(port)], env, self.log_dir).start()
        )
        self.registry_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.registry_url}/health", registry)
        return self

    def close(self) -> None:
        """Stop every child, then PostgreSQL and the broker; remove the temp folder."""
        try:
            self.children.stop_all()
        finally:
            try:
                if self.postgres:
                    self.postgres.stop()
            finally:
                if self.broker:
                    self.broker.stop()
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def keep_logs(self, dest: Path) -> Path:
        """Copy every log of the run (children, broker, PostgreSQL) to ``dest``."""
        shutil.copytree(self.log_dir, dest, dirs_exist_ok=True)
        for extra in self.work_dir.glob("*.log"):  # PostgreSQL logs next to its data folder
            shutil.copy2(extra, dest / extra.name)
        return dest

    # -- databases -----------------------------------------------------------------------
    def _admin(self) -> psycopg.Connection:
        assert self.postgres is not None
        return psycopg.connect(self.postgres.url("postgres"), autocommit=True)

    def new_database(self, label: str) -> str:
        """A fresh migrated database (a clone of the template); its SQLAlchemy URL."""
        assert self.postgres is not None
        name = f"mm_bench_{label}_{uuid.uuid4().hex[:8]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        return sqlalchemy_url(self.postgres.url(name))

    def drop_database(self, url: str) -> None:
        """Drop a database made by new_database (frees disk between repetitions)."""
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- settings ------------------------------------------------------------------------
    def settings(
        self,
        *,
        database_url: str | None = None,
        topic_prefix: str | None = None,
        group: str | None = None,
        ingress_port: int | None = None,
    ) -> Settings:
        """The caller's settings pointed at this run's services.

        Kafka: this broker, plaintext, RF 1 and the short group timeouts the embedded broker
        needs (shared tansu.md). Everything not overridden (auth secret, batch sizes, log
        level...) stays as configured, so the bench measures the configured pipeline.
        """
        assert self.broker is not None
        kafka = self.base.kafka.model_copy(
            update={
                "bootstrap_servers": self.broker.bootstrap,
                "security_protocol": "PLAINTEXT",
                "sasl_mechanism": None,
                "sasl_username": None,
                "sasl_password": None,
                "topic_prefix": topic_prefix
                if topic_prefix is not None
                else f"bench{uuid.uuid4().hex[:8]}.",
                "replication_factor": 1,
                "session_timeout_s": 3.0,
                "heartbeat_interval_s": 0.5,
                "rebalance_timeout_s": 3.0,
            }
        )
        streams = self.base.streams.model_copy(
            update={
                "sink_group": group or f"bench-sink-{uuid.uuid4().hex[:8]}",
                # The one sink of every entity (products included) runs in this group.
                "entity_sink_group": f"bench-entities-{uuid.uuid4().hex[:8]}",
            }
        )
        ingress = self.base.ingress
        if ingress_port is not None:
            ingress = ingress.model_copy(update={"host": "127.0.0.1", "port": ingress_port})
        return self.base.model_copy(
            update={
                "kafka": kafka,
                "streams": streams,
                "ingress": ingress,
                "database_url": SecretStr(database_url) if database_url else None,
                "schema_registry_url": self.registry_url or None,
            }
        )

    def child_env(self, settings: Settings) -> dict[str, str]:
        """MM_* variables for a child running with ``settings``, plus its temp folder."""
        return {**settings_env(settings), "TMPDIR": str(self.tmp_dir)}

    @staticmethod
    def create_topics(settings: Settings) -> None:
        """Create the topics of topics.yaml under the settings' prefix."""
        apply(settings, load_catalog(settings.topics_file))
