"""The 1С OData poller's workload in docker-compose.kafka.yml and deploy/k8s (issue 14,
item 3): present in both, enabled when configured (MM_ODATA__ENABLED), its password a
secret of the .env / Secret templates; and the guard both run, executed with ``sh`` and a
stand-in ``mmctl``: idle (until SIGTERM) when off, refused without a base URL, the poller
when on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mmstream.settings import Settings
from tests.deploy.test_deploy_files import COMPOSE, K8S, _by_kind, _env, _kustomize_files

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs /bin/sh")


@pytest.fixture(scope="module")
def compose_service() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["poller-onec-odata"]


@pytest.fixture(scope="module")
def k8s() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "poller-onec-odata.yaml" in kustomization["resources"]
    docs = []
    for path in [*_kustomize_files(K8S), K8S / "secret.template.yaml"]:
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def compose_guard(service: dict) -> str:
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    [script] = service["command"]
    return script.replace("$$", "$")  # compose's escape of a literal $


def k8s_container(docs: list[dict]) -> dict:
    deployment = _by_kind(docs, "Deployment")["mm-poller-onec-odata"]
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_compose_runs_the_poller_with_its_settings_from_env(compose_service):
    env = _env(compose_service)
    assert env["MM_ODATA__ENABLED"] == "${ONEC_ODATA_ENABLED:-false}"
    assert env["MM_ODATA__PASSWORD"] == "${ONEC_ODATA_PASSWORD:-}"  # from .env, never literal
    assert env["MM_ODATA__BASE_URL"] == "${ONEC_ODATA_BASE_URL:-}"
    assert env["DATABASE_URL"].startswith("postgresql://")  # x-mm-env: broker and database
    assert compose_service["deploy"]["replicas"] == 1
    assert compose_service["depends_on"]["init"]["condition"] == "service_completed_successfully"
    header = COMPOSE.read_text(encoding="utf-8").split("\nname:", 1)[0]
    for var in (
        "ONEC_ODATA_ENABLED",
        "ONEC_ODATA_BASE_URL",
        "ONEC_ODATA_PASSWORD",
        "ONEC_ODATA_ENTITY_SETS",
    ):
        assert var in header, f"{var} is not documented in the .env part of the header"


def test_k8s_runs_the_same_guard_wired_to_config_and_secret(k8s, compose_service):
    container = k8s_container(k8s)
    assert container["command"] == ["/bin/sh", "-c"]
    assert container["args"] == [compose_guard(compose_service)]
    refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
    assert refs == {("configMapRef", "mmstream-config"), ("secretRef", "mmstream-secrets")}
    deployment = _by_kind(k8s, "Deployment")["mm-poller-onec-odata"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two at once
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in _by_kind(k8s, "ScaledObject").values()}
    assert "mm-poller-onec-odata" not in scaled  # it consumes no topic: no lag to scale on
    config = _by_kind(k8s, "ConfigMap")["mmstream-config"]["data"]
    assert config["MM_ODATA__ENABLED"] == "false"
    # Optional, so only named in the Secret template's instructions (kubectl create secret).
    template = (K8S / "secret.template.yaml").read_text(encoding="utf-8")
    assert "--from-literal=MM_ODATA__PASSWORD=" in template


def test_the_deployed_config_polls_bitrix24_by_default(k8s, monkeypatch):
    config = _by_kind(k8s, "ConfigMap")["mmstream-config"]["data"]
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    deployed = Settings(_env_file=None)
    assert deployed.bitrix24.poll_enabled and not deployed.odata.enabled


def run_guard(script: str, tmp_path: Path, **env: str) -> subprocess.Popen:
    """The guard under ``sh`` with a stand-in ``mmctl`` that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "mmctl"
    fake.write_text('#!/bin/sh\necho "mmctl $*"\n', encoding="utf-8")
    fake.chmod(0o755)
    python_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(bin_dir), python_dir, "/usr/bin", "/bin"])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MM_ODATA__")}
    return subprocess.Popen(
        ["/bin/sh", "-c", script],
        env={**clean, "PATH": path, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_guard_polls_when_enabled_and_configured(compose_service, tmp_path):
    proc = run_guard(
        compose_guard(compose_service),
        tmp_path,
        MM_ODATA__ENABLED="true",
        MM_ODATA__BASE_URL="https://1c.example/trade/odata/standard.odata/",
    )
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and out.strip() == "mmctl poll onec-odata"


def test_the_guard_refuses_an_enabled_poller_without_a_base_url(compose_service, tmp_path):
    proc = run_guard(compose_guard(compose_service), tmp_path, MM_ODATA__ENABLED="true")
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2 and "MM_ODATA__BASE_URL" in err and "mmctl" not in out


def test_the_guard_idles_when_off_and_stops_on_sigterm(compose_service, tmp_path):
    proc = run_guard(compose_guard(compose_service), tmp_path, MM_ODATA__ENABLED="false")
    line = proc.stdout.readline()
    assert "odata poller off" in line
    time.sleep(0.3)  # the idle process has set up its signal wait
    assert proc.poll() is None  # idles: no restart loop
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert "mmctl" not in (proc.stdout.read() or "")
