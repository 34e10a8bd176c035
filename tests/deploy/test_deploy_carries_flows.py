"""The shipped deploys carry every flow (issue 15, item 2): what `docker compose config` and
`kubectl kustomize` produce gives each process every URL and secret its flow needs, the
values pass the start-up secret check, the root filesystems are read-only with writable
scratch volumes, topics have one owner per deploy, compacted topics keep tombstones for a
week, and the Kubernetes objects validate against the Kubernetes API schemas.

No Docker engine runs here (and no compose plugin is packaged for this machine): compose's
variable interpolation is reproduced below from the Compose specification and applied to
the parsed file, as `docker compose config` would.
"""

from __future__ import annotations

import re
import secrets
import subprocess

import kubernetes_validate
import pytest
import yaml

from mmstream.errors import ConfigurationError
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from tests.deploy.test_deploy_files import (
    COMPOSE,
    DEPLOY,
    K8S,
    MM_SERVICES,
    ROOT,
    TOPICS,
    _docs,
    _settings_from_env,
)

ENV_TEMPLATE = DEPLOY / "compose.env.example"
# The start-up check each compose service runs (Settings.check_secrets(role)).
ROLES = {
    "bridge": "bridge",
    "worker-sink-entities": "sink",
    "worker-enrich-bitrix24": "enrich",
    "worker-egress": "egress",
    "poller-onec-odata": "poll-odata",
    "init": "registry",
    "reconcile": "registry",
    "lag-exporter": "registry",
}
# What every flow needs, whatever the process: where Kafka, the registry, the database,
# Bitrix24 and 1С are, and the credentials for them.
FLOW_KEYS = (
    "MM_KAFKA__BOOTSTRAP_SERVERS",
    "SCHEMA_REGISTRY_URL",
    "DATABASE_URL",
    "MM_AUTH__JWT_SECRET",
    "MM_BITRIX24__WEBHOOK_URL",
    "MM_BITRIX24__APPLICATION_TOKENS",
    "MM_ONEC__BASE_URL",
    "MM_ONEC__USERNAME",
    "MM_ONEC__PASSWORD",
)

_REF = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation (compose-spec, "Interpolation"): $$, $VAR, ${VAR},
    ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":?", "?") and unset:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-") and unset:
            return arg
        return current or ""

    return _REF.sub(one, value)


def _template_env() -> dict[str, str]:
    env = {}
    for line in ENV_TEMPLATE.read_text("utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value
    return env


def _filled_env() -> dict[str, str]:
    """The template with the required values filled in as an operator would."""
    env = _template_env()
    env.update(
        POSTGRES_PASSWORD=secrets.token_hex(16),
        BRIDGE_JWT_SECRET=secrets.token_hex(32),
        BITRIX24_WEBHOOK_URL=f"https://mm.bitrix24.ru/rest/7/{secrets.token_hex(8)}/",
        BITRIX24_MEMBER_ID="a1b2c3d4e5f60718293a4b5c6d7e8f90",
        BITRIX24_APPLICATION_TOKEN=secrets.token_hex(16),
        ONEC_BASE_URL="https://1c.corp.lan/trade/hs/mm/",
        ONEC_PASSWORD=secrets.token_hex(12),
        GRAFANA_ADMIN_PASSWORD=secrets.token_hex(12),
        TELEGRAM_BOT_TOKEN=f"123456:{secrets.token_hex(16)}",
        TELEGRAM_CHAT_ID="-1001234567890",
    )
    return env


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def _env(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


# ---- compose ---------------------------------------------------------------------------


def test_env_template_names_exactly_the_compose_variables():
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text("utf-8")))
    listed = set(_template_env())
    assert used - listed == set(), f"variables missing from {ENV_TEMPLATE.name}"
    assert listed - used == set(), f"{ENV_TEMPLATE.name} lists variables compose never reads"


def test_compose_refuses_each_missing_required_variable(raw_compose):
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text("utf-8")))
    assert {
        "ONEC_BASE_URL",
        "ONEC_PASSWORD",
        "BITRIX24_WEBHOOK_URL",
        "BITRIX24_MEMBER_ID",
        "BITRIX24_APPLICATION_TOKEN",
        "BRIDGE_JWT_SECRET",
        "POSTGRES_PASSWORD",
    } <= required
    # The template leaves every required one empty: `docker compose config` fails on it.
    with pytest.raises(MissingVariable):
        interpolate(raw_compose, _template_env())
    for name in required:
        env = {**_filled_env(), name: ""}
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw_compose, env)


@pytest.mark.parametrize("service", MM_SERVICES)
def test_each_compose_service_starts_with_what_its_flow_needs(raw_compose, monkeypatch, service):
    env = _filled_env()
    resolved = interpolate(raw_compose, env)["services"][service]
    container_env = _env(resolved)
    for key in FLOW_KEYS:
        assert container_env.get(key), f"{service} lacks {key}"
    settings = _settings_from_env(monkeypatch, container_env)
    settings.check_secrets(ROLES[service])  # what the process runs first: must not refuse
    assert settings.onec.base_url == env["ONEC_BASE_URL"]
    assert "127.0.0.1" not in settings.onec.base_url
    tokens = settings.bitrix24.application_tokens
    assert {k: v.get_secret_value() for k, v in tokens.items()} == {
        env["BITRIX24_MEMBER_ID"]: env["BITRIX24_APPLICATION_TOKEN"]
    }
    assert settings.schema_registry_url == "http://schema-registry:8081"
    assert settings.bitrix24.auth_mode == "webhook"
    # Optional parts stay off without their secret: no working default anywhere.
    assert not settings.commerceml.password or not settings.commerceml.password.get_secret_value()
    assert not settings.bitrix24.oauth.client_secret.get_secret_value()


def test_compose_bridge_turns_commerceml_on_with_its_password(raw_compose, monkeypatch):
    password = secrets.token_hex(20)
    resolved = interpolate(raw_compose, {**_filled_env(), "COMMERCEML_PASSWORD": password})
    bridge = _env(resolved["services"]["bridge"])
    settings = _settings_from_env(monkeypatch, bridge)
    settings.check_secrets("bridge")
    assert settings.commerceml.password.get_secret_value() == password
    assert str(settings.commerceml.work_dir) == "/var/lib/mmstream/commerceml"


def test_compose_topics_have_one_owner_and_no_partition_increase(raw_compose):
    commands = {
        name: " ".join(map(str, (svc.get("entrypoint") or []) + (svc.get("command") or [])))
        for name, svc in raw_compose["services"].items()
    }
    owners = [name for name, command in commands.items() if "topics apply" in command]
    assert owners == ["init"]
    # `topics apply` never adds partitions unless told to; the deploy never tells it.
    assert not re.search(r"topics apply[^&]*--(allow|increase|partitions)", commands["init"])
    assert "schemas register --compatibility BACKWARD_TRANSITIVE" in commands["init"]


# ---- Kubernetes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kustomized(tool) -> list[dict]:
    """`kubectl kustomize deploy/k8s`: exactly what `kubectl apply -k` would send."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


# Kinds whose schemas come from the CRDs of an operator, not from Kubernetes itself.
_CRD_GROUPS = ("kafka.strimzi.io/", "keda.sh/", "monitoring.coreos.com/")


def test_kustomize_output_validates_against_the_kubernetes_schemas(kustomized):
    checked = 0
    for doc in kustomized:
        if doc["apiVersion"].startswith(_CRD_GROUPS):
            continue
        kubernetes_validate.validate(doc, "1.32", strict=True)
        checked += 1
    kinds = {d["kind"] for d in kustomized}
    assert checked >= 15
    assert {
        "Deployment",
        "Job",
        "ConfigMap",
        "Service",
        "KafkaTopic",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
    } <= kinds


def _pods(docs: list[dict]) -> dict[str, dict]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    }


def test_every_container_has_a_read_only_root_and_writable_scratch(kustomized):
    pods = _pods(kustomized)
    assert {"mm-bridge", "mm-lag-exporter", "mm-alertmanager", "mm-migrate"} <= set(pods)
    for name, pod in pods.items():
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            # Python's tempfile, librdkafka and Alertmanager's state write here.
            writable = {path for path, vol in mounts.items() if vol in empty_dirs}
            assert writable & {"/tmp", "/alertmanager"}, f"{name}: no writable scratch volume"
    bridge = pods["mm-bridge"]["containers"][0]
    assert any(m["mountPath"] == "/var/lib/mmstream/commerceml" for m in bridge["volumeMounts"])


def test_k8s_pods_get_every_url_and_secret_the_flows_need(kustomized, monkeypatch):
    config = next(
        d
        for d in kustomized
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mmstream-config"
    )["data"]
    template = next(d for d in _docs(K8S / "secret.template.yaml") if d["kind"] == "Secret")
    keys = set(config) | set(template["stringData"])
    for key in FLOW_KEYS:
        assert key in keys, f"neither the ConfigMap nor the Secret template names {key}"
    assert "127.0.0.1" not in config["MM_ONEC__BASE_URL"]
    assert config["MM_ONEC__BASE_URL"].split("/")[2].endswith(".invalid")  # fails loudly if left
    for name, pod in _pods(kustomized).items():
        if name == "mm-alertmanager":
            continue
        refs = {next(iter(r.values()))["name"] for r in pod["containers"][0]["envFrom"]}
        assert refs == {"mmstream-config", "mmstream-secrets"}, name
    # The ConfigMap with real secrets in the template's keys: every role starts.
    real = {
        "DATABASE_URL": f"postgresql://mmstream:{secrets.token_hex(12)}@pg.db:5432/mmstream",
        "MM_AUTH__JWT_SECRET": secrets.token_hex(32),
        "MM_BITRIX24__WEBHOOK_URL": f"https://mm.bitrix24.ru/rest/7/{secrets.token_hex(8)}/",
        "MM_BITRIX24__APPLICATION_TOKENS": f'{{"m1": "{secrets.token_hex(16)}"}}',
        "MM_ONEC__PASSWORD": secrets.token_hex(12),
    }
    assert set(real) == set(template["stringData"])
    # Left at the template's placeholder, the 1С address stops egress at start, by name.
    shipped = _settings_from_env(monkeypatch, {**config, **real})
    with pytest.raises(ConfigurationError, match=r"onec\.base_url is not set"):
        shipped.check_secrets("egress")
    address = {"MM_ONEC__BASE_URL": "https://erp.example-trade.ru/trade/hs/mm/"}
    settings = _settings_from_env(monkeypatch, {**config, **real, **address})
    for role in ("bridge", "sink", "enrich", "egress", "registry"):
        settings.check_secrets(role)


def test_k8s_topics_have_one_owner(kustomized):
    topics = [d for d in kustomized if d["kind"] == "KafkaTopic"]
    assert len(topics) == len(load_catalog(TOPICS).topics)
    for name, pod in _pods(kustomized).items():
        for container in pod["containers"]:
            command = " ".join(container.get("command", []) + container.get("args", []))
            assert "topics apply" not in command, f"{name}: Strimzi owns the topics in k8s"
    job = _pods(kustomized)["mm-migrate"]["containers"][0]
    assert "schemas register --compatibility BACKWARD_TRANSITIVE" in " ".join(job["args"])


def test_topic_ownership_is_documented():
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "Strimzi" in readme and "one owner" in readme.lower()


# ---- compacted topics keep tombstones for a week ------------------------------------------


def test_every_compacted_topic_sets_delete_retention(kustomized):
    week = 7 * 86_400_000
    settings = Settings(_env_file=None)
    compacted = [
        s
        for s in load_catalog(TOPICS).topics.values()
        if "compact" in s.configs.get("cleanup.policy", "")
    ]
    assert len(compacted) >= 17
    for spec in compacted:
        assert int(spec.configs.get("delete.retention.ms", 0)) >= week, spec.name
    for doc in kustomized:
        if doc["kind"] == "KafkaTopic" and "compact" in doc["spec"]["config"]["cleanup.policy"]:
            assert int(doc["spec"]["config"]["delete.retention.ms"]) >= week
    catalog = (ROOT / "docs" / "topic-catalog.md").read_text("utf-8")
    assert "delete.retention.ms" in catalog
    assert settings.kafka  # the settings still load with the catalog (no unknown keys)


# ---- every MM_* name the deploy files mention is a real setting -------------------------


def _is_setting(name: str) -> bool:
    """True if MM_SECTION__FIELD names a field of Settings (pydantic's env mapping)."""
    from pydantic import BaseModel

    model: type[BaseModel] = Settings
    parts = name.removeprefix("MM_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            model = kind
            continue
        # A dict-valued setting takes MM_X__Y__KEY for its keys.
        return i == len(parts) - 1 or getattr(kind, "__origin__", None) is dict
    return False


def test_every_mm_name_in_the_deploy_files_is_a_setting(raw_compose):
    texts = {
        path.name: path.read_text("utf-8")
        for path in (K8S / "configmap.yaml", K8S / "secret.template.yaml")
    }
    names = {n for text in texts.values() for n in re.findall(r"\bMM_[A-Z0-9_]*[A-Z0-9]", text)}
    for name, svc in raw_compose["services"].items():
        names |= {k for k in _env(svc) if k.startswith("MM_")}
    names -= {"MM_SECTION__FIELD"}  # the ConfigMap's description of the pattern
    assert {
        "MM_KAFKA__SASL_PASSWORD",
        "MM_REGISTRY__BASIC_AUTH_PASSWORD",
        "MM_ONEC__BASE_URL",
        "MM_BITRIX24__OAUTH__CLIENT_SECRET",
        "MM_KAFKA__SSL_CA_FILE",
    } <= names
    unknown = sorted(n for n in names if not _is_setting(n))
    assert not unknown, f"not settings (typos?): {unknown}"


def test_monitors_select_every_metrics_endpoint(kustomized):
    """kube-prometheus scrapes every process that serves /metrics: the bridge through its
    Service, the others through their pods' port named `metrics`."""
    deployments = {d["metadata"]["name"]: d for d in kustomized if d["kind"] == "Deployment"}
    [pod_monitor] = [d for d in kustomized if d["kind"] == "PodMonitor"]
    [service_monitor] = [d for d in kustomized if d["kind"] == "ServiceMonitor"]
    selected = next(
        e["values"]
        for e in pod_monitor["spec"]["selector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    )
    serving = set()
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        ports = {
            p.get("name")
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        if "metrics" in ports:
            serving.add(labels["app.kubernetes.io/component"])
    assert serving == set(selected)
    assert {"lag-exporter", "reconcile", "worker-egress"} <= serving
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    bridge_service = next(
        d for d in kustomized if d["kind"] == "Service" and d["metadata"]["name"] == "mm-bridge"
    )
    assert (
        service_monitor["spec"]["selector"]["matchLabels"].items()
        <= bridge_service["metadata"]["labels"].items()
    )
    assert service_monitor["spec"]["endpoints"][0]["port"] in {
        p["name"] for p in bridge_service["spec"]["ports"]
    }
