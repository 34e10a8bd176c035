"""`mmctl schemas register`, the deploy step that registers every Avro schema and sets the
compatibility level (BACKWARD_TRANSITIVE) before the workers start; run against the
project's schema registry process (Confluent's REST API) as the compose `init` service and
the k8s migrate Job run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import httpx

from mmstream.topics import load_catalog
from tests.deploy.test_deploy_files import ROOT, TOPICS


def _mmctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("MM_")
        and k.upper() not in ("SCHEMA_REGISTRY_URL", "DATABASE_URL")
    }
    return subprocess.run(
        [sys.executable, "-m", "mmstream.cli.main", "schemas", "register", *args],
        env={**clean, "MM_LOG_LEVEL": "INFO", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_register_sets_backward_transitive_and_is_idempotent(registry_url):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {"SCHEMA_REGISTRY_URL": registry_url, "MM_KAFKA__TOPIC_PREFIX": prefix}
    first = _mmctl(env)
    assert first.returncode == 0, first.stderr
    avro = [s for s in load_catalog(TOPICS).topics.values() if s.value_format == "avro"]
    assert len(avro) >= 15
    for spec in avro:
        subject = f"{prefix}{spec.name}-value"
        config = httpx.get(f"{registry_url}/config/{subject}").json()
        assert config["compatibilityLevel"] == "BACKWARD_TRANSITIVE", subject
        assert httpx.get(f"{registry_url}/subjects/{subject}/versions").json() == [1], subject
    again = _mmctl(env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout  # same ids: nothing new registered
    subject = f"{prefix}norm.product-value"
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").json() == [1]


def test_an_incompatible_schema_stops_the_deploy_step(registry_url, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {"SCHEMA_REGISTRY_URL": registry_url, "MM_KAFKA__TOPIC_PREFIX": prefix}
    assert _mmctl(env).returncode == 0
    schemas = tmp_path / "avro"
    shutil.copytree(ROOT / "avro", schemas)
    product = json.loads((schemas / "product.avsc").read_text("utf-8"))
    # A new field without a default cannot read the records already on the topic.
    product["fields"].append({"name": "mm_new_required", "type": "string"})
    (schemas / "product.avsc").write_text(json.dumps(product), "utf-8")
    refused = _mmctl({**env, "MM_SCHEMAS_DIR": str(schemas)})
    assert refused.returncode == 1
    assert f"{prefix}norm.product-value" in refused.stderr
    assert "refused" in refused.stderr


def test_unreachable_registry_is_exit_1_with_the_url():
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    result = _mmctl({"SCHEMA_REGISTRY_URL": url})
    assert result.returncode == 1
    assert url in result.stderr
