"""Secrets at the command line (design.md invariant 11): production commands refuse
development, placeholder and short secrets before they connect anywhere, and `mmctl config`
shows no secret, not even inside a URL."""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import time

import pytest

from mmstream.settings import REPO_ROOT
from tests.support.mmctl import run_mmctl


def _clean_env(**env: str) -> dict[str, str]:
    """The outer environment without MM_* / DATABASE_URL, plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("MM_")
        and k.upper() not in ("DATABASE_URL", "SCHEMA_REGISTRY_URL")
    }
    return {**base, "MM_LOG_LEVEL": "INFO", **env}


class Listener:
    """A TCP port that records whether anything connected to it (a stand-in Kafka / PostgreSQL
    address: the refused process must not even try)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connected(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def targets():
    kafka, db = Listener(), Listener()
    yield kafka, db
    kafka.close()
    db.close()


def _reachable_env(kafka: Listener, db: Listener, **env: str) -> dict[str, str]:
    return _clean_env(
        **{
            "MM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka.port}",
            "DATABASE_URL": f"postgresql://mm@127.0.0.1:{db.port}/mm",
            **env,
        }
    )


STRONG = secrets.token_hex(16)  # 32 bytes


@pytest.mark.parametrize(
    "args,env,setting,value",
    [
        (["bridge"], {}, "auth.jwt_secret", "dev-only-change-me"),
        (
            ["bridge"],
            {"MM_AUTH__JWT_SECRET": "0123456789abcdef0123456789abcde"},
            "auth.jwt_secret",
            "0123456789abcdef0123456789abcde",
        ),  # 31 bytes
        (
            ["bridge"],
            {"MM_AUTH__JWT_SECRET": "REPLACE_ME: at least 32 random bytes"},
            "auth.jwt_secret",
            "REPLACE_ME",
        ),  # the k8s template's
        (
            ["bridge"],
            {"MM_AUTH__JWT_SECRET": STRONG, "MM_COMMERCEML__PASSWORD": "dev-only-commerceml"},
            "commerceml.password",
            "dev-only-commerceml",
        ),
        (["worker", "egress"], {}, "bitrix24.webhook_url", "devwebhookcode"),
        (["worker", "enrich-bitrix24"], {}, "bitrix24.webhook_url", "devwebhookcode"),
        (
            ["worker", "egress"],
            {
                "MM_BITRIX24__WEBHOOK_URL": f"https://p.bitrix24.ru/rest/1/{STRONG}/",
                "MM_ONEC__PASSWORD": "changeme",
            },
            "onec.password",
            "changeme",
        ),
        (
            ["worker", "sink-entities"],
            {
                "MM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "MM_KAFKA__SASL_MECHANISM": "PLAIN",
                "MM_KAFKA__SASL_USERNAME": "svc",
                "MM_KAFKA__SASL_PASSWORD": "kafka-password",
            },
            "kafka.sasl_password",
            "kafka-password",
        ),
        (
            ["poll", "onec-odata"],
            {"MM_ODATA__PASSWORD": "<odata password>"},
            "odata.password",
            "<odata password>",
        ),
    ],
)
def test_production_commands_refuse_unfit_secrets_before_connecting(
    tmp_path, monkeypatch, targets, args, env, setting, value
):
    kafka, db = targets
    proc = run_mmctl(args, _reachable_env(kafka, db, **env), tmp_path, monkeypatch)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refusing to start" in proc.stderr and setting in proc.stderr, proc.stderr
    assert value not in proc.stderr + proc.stdout  # named, never shown
    assert not kafka.connected() and not db.connected()


def test_the_registry_refuses_a_placeholder_database_password(tmp_path, monkeypatch, targets):
    kafka, db = targets
    env = _reachable_env(kafka, db, DATABASE_URL=f"postgresql://mm:postgres@127.0.0.1:{db.port}/mm")
    proc = run_mmctl(["registry", "--port", "0"], env, tmp_path, monkeypatch)
    assert proc.returncode == 2 and "database_url" in proc.stderr, proc.stderr
    assert not db.connected()


def test_a_bridge_with_real_secrets_gets_past_the_check(tmp_path, targets):
    # The counterpart: with fit secrets the bridge starts and reaches for Kafka.
    kafka, db = targets
    env = _reachable_env(kafka, db, MM_AUTH__JWT_SECRET=STRONG, MM_INGRESS__PORT="0")
    child = subprocess.Popen(
        [sys.executable, "-m", "mmstream.cli.main", "bridge"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not kafka.connected():
            assert child.poll() is None or time.monotonic() < deadline, child.stdout.read().decode()
            assert time.monotonic() < deadline, "the bridge never reached for Kafka"
            time.sleep(0.2)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_embedded_children_may_run_on_the_development_values(tmp_path, targets):
    # What `mmctl run` gives its children (settings_env of settings marked embedded): the same
    # dev defaults pass the check, so the bridge starts and reaches for Kafka.
    kafka, db = targets
    env = _reachable_env(kafka, db, MM_PROFILE="embedded", MM_INGRESS__PORT="0")
    child = subprocess.Popen(
        [sys.executable, "-m", "mmstream.cli.main", "bridge"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not kafka.connected():
            assert time.monotonic() < deadline, "the embedded bridge never reached for Kafka"
            time.sleep(0.2)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_mmctl_config_shows_no_configured_secret(tmp_path, monkeypatch):
    s = {
        name: f"{name}{secrets.token_hex(12)}"
        for name in (
            "db",
            "jwt",
            "apikey",
            "sasl",
            "hook",
            "cml",
            "onec",
            "odata",
            "onecurl",
            "odataurl",
            "registry",
            "client",
            "access",
            "refresh",
            "apptoken",
            "portal",
        )
    }
    env = _clean_env(
        DATABASE_URL=f"postgresql://mm:{s['db']}@db.internal:5432/mm?password={s['db']}",
        SCHEMA_REGISTRY_URL=f"https://reg:{s['registry']}@registry.internal:8081",
        MM_AUTH__JWT_SECRET=s["jwt"],
        MM_AUTH__API_KEYS=f'{{"onec": {{"key": "{s["apikey"]}"}}}}',
        MM_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
        MM_KAFKA__SASL_MECHANISM="PLAIN",
        MM_KAFKA__SASL_USERNAME="svc",
        MM_KAFKA__SASL_PASSWORD=s["sasl"],
        MM_BITRIX24__WEBHOOK_URL=f"https://portal.bitrix24.ru/rest/1/{s['hook']}/",
        MM_BITRIX24__APPLICATION_TOKENS=f'{{"member": "{s["apptoken"]}"}}',
        MM_BITRIX24__OAUTH__CLIENT_SECRET=s["client"],
        MM_BITRIX24__OAUTH__ACCESS_TOKEN=s["access"],
        MM_BITRIX24__OAUTH__REFRESH_TOKEN=s["refresh"],
        MM_BITRIX24__OAUTH__PORTAL=f"https://app:{s['portal']}@portal.bitrix24.ru",
        MM_COMMERCEML__PASSWORD=s["cml"],
        MM_ONEC__PASSWORD=s["onec"],
        MM_ONEC__BASE_URL=f"http://integration:{s['onecurl']}@1c.local/trade/hs/mm/",
        MM_ODATA__PASSWORD=s["odata"],
        MM_ODATA__BASE_URL=f"http://odata:{s['odataurl']}@1c.local/trade/odata/standard.odata/",
    )
    proc = run_mmctl(["config"], env, tmp_path, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    for name, value in s.items():
        assert value not in out, f"mmctl config shows {name}"
        assert base64.b64encode(value.encode()).decode() not in out
    # Still useful: where each URL points is shown.
    for visible in (
        "db.internal:5432",
        "registry.internal",
        "portal.bitrix24.ru/rest/1/",
        "1c.local/trade/hs/mm/",
        "1c.local/trade/odata/",
    ):
        assert visible in out, visible
    assert str(REPO_ROOT) in out or "topics.yaml" in out


def test_invalid_settings_are_reported_without_their_values(tmp_path, monkeypatch):
    key = secrets.token_hex(16)
    env = _clean_env(MM_AUTH__API_KEYS=f'{{"onec": {{"key": "{key}", "roles": "not-a-list"}}}}')
    proc = run_mmctl(["config"], env, tmp_path, monkeypatch)
    assert proc.returncode == 2 and "auth.api_keys.onec.roles" in proc.stderr, proc.stderr
    assert key not in proc.stdout + proc.stderr
