"""Static checks of the deployment files: nothing here starts a container or a cluster.

What they guard: the YAML parses, the Kubernetes topics are generated from topics.yaml and
not edited apart from it, the alert rules and Grafana dashboards only use metrics the code
exports, every alert links to an existing runbook section, KEDA scales the workers on the
right consumer groups, every client bootstraps from all three brokers, and no secret value
is written into a deployment file.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import mmstream.metrics
from mmstream.settings import AuthSettings, Bitrix24Settings, Settings
from mmstream.topics import effective_specs, load_catalog
from stages.enrich.worker import group_id as enrich_group_id

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = ROOT / "docker-compose.kafka.yml"
TOPICS = ROOT / "topics.yaml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
RUNBOOK = ROOT / "docs" / "runbook.md"

APP_SERVICES = ("bridge", "worker-sink-entities", "worker-enrich-bitrix24", "worker-egress")
# Every service built from this repository (all read x-mm-env).
MM_SERVICES = (*APP_SERVICES, "init", "reconcile", "poller-onec-odata", "lag-exporter")
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
# Environment variable names whose values are secrets.
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|WEBHOOK|API_KEY|PRIVATE_KEY|CREDENTIAL"
    r"|DATABASE_URL",
    re.IGNORECASE,
)
PLACEHOLDER = "REPLACE_ME"


def _yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml"), COMPOSE])


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _kustomize_files(folder: Path) -> list[Path]:
    """The files a kustomization lists as resources, following folders (kustomizations)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    files = []
    for name in kustomization["resources"]:
        path = (folder / name).resolve()
        files += _kustomize_files(path) if path.is_dir() else [path]
    return files


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict]:
    """Every object the kustomization applies (as written), plus the Secret template."""
    docs = []
    for path in [*_kustomize_files(K8S), K8S / "secret.template.yaml"]:
        docs += _docs(path)
    return docs


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


# ---- everything parses ------------------------------------------------------------------


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path):
    docs = _docs(path)
    assert docs, f"{path} has no YAML document"
    assert all(isinstance(d, dict) for d in docs), f"{path}: every document must be a mapping"


# ---- Strimzi topics == topics.yaml ------------------------------------------------------


def _generator():
    spec = importlib.util.spec_from_file_location("gen_kafkatopics", DEPLOY / "gen_kafkatopics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kafkatopics_is_regenerated_from_topics_yaml():
    current = (K8S / "kafkatopics.yaml").read_text(encoding="utf-8")
    assert _generator().render(TOPICS) == current, (
        "deploy/k8s/kafkatopics.yaml is stale: run `python deploy/gen_kafkatopics.py`"
    )


def test_kafkatopics_match_what_mmctl_topics_apply_creates():
    # The code's own reading of topics.yaml (no prefix, no replication override) is the
    # reference, so the generator cannot drift from mmstream.topics.
    settings = Settings(_env_file=None, kafka={"topic_prefix": "", "replication_factor": None})
    expected = {s.name: s for s in effective_specs(settings, load_catalog(TOPICS))}
    resources = _docs(K8S / "kafkatopics.yaml")
    assert [r["spec"]["topicName"] for r in resources] == list(expected)
    for res in resources:
        assert res["apiVersion"].startswith("kafka.strimzi.io/")
        assert res["kind"] == "KafkaTopic"
        assert res["metadata"]["labels"]["strimzi.io/cluster"]
        spec = expected[res["spec"]["topicName"]]
        assert res["spec"]["partitions"] == spec.partitions
        assert res["spec"]["replicas"] == spec.replication_factor
        assert res["spec"]["config"] == spec.configs


def test_topics_cluster_is_the_one_the_apps_bootstrap_from():
    cluster = {
        r["metadata"]["labels"]["strimzi.io/cluster"] for r in _docs(K8S / "kafkatopics.yaml")
    }
    config = next(d for d in _docs(K8S / "configmap.yaml") if d["kind"] == "ConfigMap")
    bootstrap = config["data"]["MM_KAFKA__BOOTSTRAP_SERVERS"]
    assert [f"{c}-kafka-bootstrap" for c in cluster] == [bootstrap.split(":")[0]]


# ---- alert rules use only exported metrics -----------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}
_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
# Series Prometheus writes itself for every target.
_SYNTHETIC = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}


def exported_metric_names() -> set[str]:
    """Sample names the code's processes export: everything registered in the registry
    mmstream.metrics registers into (a Counter `x` is exported as `x_total`), which includes
    prometheus_client's process and platform collectors."""
    assert any(isinstance(o, MetricWrapperBase) for o in vars(mmstream.metrics).values())
    names = set(_SYNTHETIC)
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def project_metrics() -> list[MetricWrapperBase]:
    """The metric objects declared in mmstream/metrics.py."""
    return [o for o in vars(mmstream.metrics).values() if isinstance(o, MetricWrapperBase)]


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {...} or by/without/on/ignoring lists), strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_promql_name_extraction():
    expr = (
        'sum by (stage, reason) (increase(mm_dlq_records_total{stage=~"sink|x"}[15m])) > 0 '
        "or (sum(mm_up) unless sum(mm_up offset 15m)) / on(job) group_left up"
    )
    assert promql_metric_names(expr) == {"mm_dlq_records_total", "mm_up", "up"}
    grafana = (
        "time() - max by (group) (mm_consumer_lag_updated_timestamp_seconds) "
        "+ histogram_quantile(0.99, sum by (le, agent) (rate(mm_agent_batch_size_bucket"
        '[$__rate_interval]))) * 1e3 + deriv(sum(mm_consumer_lag{group=~"$group"})[15m:1m])'
    )
    assert promql_metric_names(grafana) == {
        "mm_consumer_lag_updated_timestamp_seconds",
        "mm_agent_batch_size_bucket",
        "mm_consumer_lag",
    }


def test_exported_names_see_every_declared_metric():
    exported = exported_metric_names()
    # A name that is not exported must fail the check (the test can fail).
    assert "mm_no_such_metric_total" not in exported
    assert {
        "mm_consumer_lag",
        "mm_outbox_backlog",
        "mm_egress_circuit_state",
        "mm_cash_sla_deviations_total",
        "mm_agent_batch_duration_seconds_bucket",
        "process_resident_memory_bytes",
        "up",
    } <= exported


def _alert_rules() -> list[dict]:
    return [r for g in _docs(DEPLOY / "prometheus" / "alerts.yml")[0]["groups"] for r in g["rules"]]


def test_alert_rules_reference_only_exported_metrics():
    exported = exported_metric_names()
    assert {
        "mm_ingress_requests_total",
        "mm_up",
        "mm_ingress_request_duration_seconds_bucket",
    } <= exported
    rules = _alert_rules()
    assert rules
    for rule in rules:
        used = promql_metric_names(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in its expression"
        unknown = used - exported
        assert not unknown, (
            f"{rule['alert']} uses metrics mmstream.metrics does not export: {unknown}"
        )


def test_the_issue_alerts_exist():
    # lag growing, DLQ growing, circuit open, OVERLOAD_LIMIT, ingress 5xx, outbox age, cash SLA
    used = {name for r in _alert_rules() for name in promql_metric_names(r["expr"])}
    assert {
        "mm_consumer_lag",
        "mm_dlq_records_total",
        "mm_egress_circuit_state",
        "mm_egress_errors_total",
        "mm_ingress_requests_total",
        "mm_outbox_oldest_age_seconds",
        "mm_cash_sla_deviations_total",
    } <= used
    overload = [r for r in _alert_rules() if "bitrix24_overload_limit" in r["expr"]]
    assert overload and overload[0]["labels"]["severity"] == "critical"


def _slug(heading: str) -> str:
    """The anchor GitHub/GitLab give a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_links_to_its_runbook_section():
    anchors = {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+)$", RUNBOOK.read_text("utf-8"), re.M)}
    for rule in _alert_rules():
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", f"{rule['alert']}: runbook_url {url!r}"
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbook.md"
        assert rule["annotations"].get("summary"), rule["alert"]


def test_runbook_uses_the_mmctl_commands():
    text = RUNBOOK.read_text("utf-8")
    for command in (
        "mmctl groups describe",
        "mmctl groups reset",
        "--to-datetime",
        "--execute",
        "mmctl dlq list",
        "mmctl dlq show",
        "mmctl dlq replay",
        "mmctl health",
        "mmctl topics diff",
        "mmctl topics apply",
    ):
        assert command in text, command


# ---- Grafana dashboards ------------------------------------------------------------------


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text("utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # collapsed rows hold their panels
    return out


def test_dashboards_exist_and_are_provisioned(compose):
    dashboards = _dashboards()
    assert set(dashboards) == {"ingress", "pipeline", "egress", "consumer-groups"}
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)
    provider = _docs(DEPLOY / "grafana" / "provisioning" / "dashboards" / "mmstream.yml")[0]
    path = provider["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    datasource = _docs(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[0]
    uid = datasource["datasources"][0]["uid"]
    for name, dashboard in dashboards.items():
        for panel in _panels(dashboard):
            if panel.get("type") == "row":
                continue
            assert panel["datasource"]["uid"] == uid, f"{name}: {panel['title']}"
            assert panel["targets"], f"{name}: {panel['title']} has no query"


def test_dashboards_reference_only_exported_metrics():
    exported = exported_metric_names()
    seen = set()
    for name, dashboard in _dashboards().items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                used = promql_metric_names(target["expr"])
                assert used, f"{name}: {panel['title']}: no metric in {target['expr']!r}"
                unknown = used - exported
                assert not unknown, f"{name}: {panel['title']} uses unexported metrics {unknown}"
                seen |= used
        for var in dashboard.get("templating", {}).get("list", []):
            query = var.get("query")
            query = query.get("query", "") if isinstance(query, dict) else (query or "")
            metric = re.match(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,", query)
            if metric:
                assert metric.group(1) in exported, f"{name}: variable {var['name']}"
    # The issue's list: ingress, agents, sink skips, outbox, egress, circuit, DLQ, lag, cash.
    assert {
        "mm_ingress_requests_total",
        "mm_produce_duration_seconds_bucket",
        "mm_agent_records_total",
        "mm_sink_records_total",
        "mm_outbox_backlog",
        "mm_egress_calls_total",
        "mm_retries_total",
        "mm_egress_rate_limit_wait_seconds_sum",
        "mm_egress_circuit_state",
        "mm_dlq_records_total",
        "mm_consumer_lag",
        "mm_cash_sla_deviations_total",
    } <= seen


# ---- metric naming -----------------------------------------------------------------------

# Labels whose values would be ids or free text: unbounded series.
_UNBOUNDED_LABELS = {
    "id",
    "request_id",
    "event_id",
    "entity_id",
    "key",
    "offset",
    "message",
    "error",
    "url",
    "path",
    "user",
    "subject",
    "instance_id",
}


def test_project_metrics_follow_prometheus_conventions():
    for metric in project_metrics():
        family = metric.describe()[0]
        name = family.name
        assert name.startswith("mm_"), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        if re.search(r"_(duration|latency|age|wait|time|delay)(_|$)", name):
            assert name.endswith(("_seconds", "_timestamp_seconds")), f"{name}: time in seconds"
        if family.type == "gauge":
            assert not name.endswith("_total"), f"{name}: _total is for counters"
        labels = set(metric._labelnames)  # noqa: SLF001 — the public API has no accessor
        assert not labels & _UNBOUNDED_LABELS, (
            f"{name}: unbounded labels {labels & _UNBOUNDED_LABELS}"
        )


def test_prometheus_loads_the_alert_rules():
    config = _docs(DEPLOY / "prometheus" / "prometheus.yml")[0]
    for rule_file in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).is_file()
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    assert {
        "mm-bridge",
        "mm-worker-sink-entities",
        "mm-worker-enrich-bitrix24",
        "mm-worker-egress",
    } <= jobs
    assert "mm-worker-sink" not in jobs  # products are on the entity sink: no product sink


# ---- docker-compose.kafka.yml -------------------------------------------------------------


def test_app_services_bootstrap_from_all_three_brokers(compose):
    services = compose["services"]
    advertised = {
        b: _env(services[b])["KAFKA_ADVERTISED_LISTENERS"].split("://", 1)[1] for b in BROKERS
    }
    for name in (*APP_SERVICES, "init"):
        bootstrap = _env(services[name]).get("MM_KAFKA__BOOTSTRAP_SERVERS") or ""
        assert sorted(bootstrap.split(",")) == sorted(advertised.values()), name


def test_kraft_quorum_of_three_combined_nodes(compose):
    services = compose["services"]
    envs = [_env(services[b]) for b in BROKERS]
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs}
    assert len(voters) == 1
    expected = {f"{e['KAFKA_NODE_ID']}@{b}:9093" for e, b in zip(envs, BROKERS)}
    assert set(voters.pop().split(",")) == expected
    for env in envs:
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"


def test_compose_dependencies_are_consistent(compose):
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        image = svc.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, cond in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} needs a healthcheck for {name}"
            if cond["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} must be one-shot"
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"
    assert services["bridge"]["deploy"]["replicas"] == 2
    assert services["init"]["command"] == [
        "mmctl migrate && mmctl topics apply"
        " && mmctl schemas register --compatibility BACKWARD_TRANSITIVE"
    ]
    assert services["init"]["depends_on"]["schema-registry"]["condition"] == "service_healthy"
    assert "worker-sink" not in services  # one sink for every entity, products included
    assert services["worker-sink-entities"]["command"][:2] == ["worker", "sink-entities"]
    assert services["worker-enrich-bitrix24"]["command"][:2] == ["worker", "enrich-bitrix24"]
    assert services["worker-egress"]["command"][:2] == ["worker", "egress"]


def test_required_compose_variables_are_documented_at_the_top():
    text = COMPOSE.read_text(encoding="utf-8")
    header = text.split("\nname:", 1)[0]
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required, "secrets must be required interpolations (${VAR:?message})"
    for var in required:
        assert var in header, f"{var} is required but not documented in the header comment"


# ---- no literal secrets --------------------------------------------------------------------


def _dev_defaults() -> list[str]:
    """The built-in development secrets: a deployment file must never carry them."""
    webhook = Bitrix24Settings().webhook_url.get_secret_value()
    return [AuthSettings().jwt_secret.get_secret_value(), webhook.rstrip("/").rsplit("/", 1)[-1]]


def _literal_secret(value: str | None) -> bool:
    """True if the value carries a secret itself rather than a ${VAR} reference."""
    if not value:
        return False
    if "${" not in value:
        return True
    # A URL with credentials: the password part must be the reference.
    userinfo = re.match(r"^\w[\w+.-]*://([^@/]*)@", value)
    if userinfo and ":" in userinfo.group(1):
        return not userinfo.group(1).split(":", 1)[1].startswith("${")
    return False


def test_compose_has_no_literal_secrets(compose):
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if SECRET_NAME.search(key):
                assert not _literal_secret(value), f"{name}: {key} holds a literal secret"
    text = COMPOSE.read_text(encoding="utf-8")
    for secret in _dev_defaults():
        assert secret not in text


def test_k8s_has_no_literal_secrets(k8s_docs):
    for doc in k8s_docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "ConfigMap":
            leaked = [k for k in doc["data"] if SECRET_NAME.search(k)]
            assert not leaked, f"ConfigMap {name} holds secret keys {leaked}"
        if kind == "Secret":
            for key, value in {**doc.get("stringData", {}), **doc.get("data", {})}.items():
                assert PLACEHOLDER in str(value), f"Secret {name}: {key} is not a placeholder"
        pod = (doc.get("spec", {}).get("template") or {}).get("spec")
        for container in (pod or {}).get("containers", []):
            for env in container.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env, (
                        f"{kind} {name}: {env['name']} must come from a Secret"
                    )
    text = "".join(
        (K8S / f).read_text(encoding="utf-8") for f in sorted(p.name for p in K8S.iterdir())
    )
    for secret in _dev_defaults():
        assert secret not in text


def test_secret_template_is_not_applied():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "secret.template.yaml" not in kustomization["resources"]


# ---- Kubernetes objects are complete ----------------------------------------------------


def test_kustomization_resources_exist():
    for path in _kustomize_files(K8S):
        assert path.is_file(), path


def test_k8s_objects_have_required_fields(k8s_docs):
    for doc in k8s_docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc.get("metadata", {}).get("name"), doc


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_workloads_are_wired_to_config_and_secret(k8s_docs):
    workloads = [*_by_kind(k8s_docs, "Deployment").values(), *_by_kind(k8s_docs, "Job").values()]
    # Alertmanager is not ours: its settings come from its own Secret (test_alerting.py).
    workloads = [w for w in workloads if w["metadata"]["name"] != "mm-alertmanager"]
    assert len(workloads) == 8  # bridge, 3 workers (no product sink), OData poller,
    #                              reconcile, lag exporter, migrate job
    for doc in workloads:
        spec = doc["spec"]
        if doc["kind"] == "Deployment":
            labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= labels.items()
        for container in spec["template"]["spec"]["containers"]:
            refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
            assert refs == {("configMapRef", "mmstream-config"), ("secretRef", "mmstream-secrets")}
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_bridge_probes_service_hpa_and_pdbs(k8s_docs):
    deployments = _by_kind(k8s_docs, "Deployment")
    bridge = deployments["mm-bridge"]
    assert bridge["spec"]["replicas"] == 2
    container = bridge["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["bridge"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"

    service = _by_kind(k8s_docs, "Service")["mm-bridge"]
    assert (
        service["spec"]["selector"].items()
        <= bridge["spec"]["template"]["metadata"]["labels"].items()
    )

    hpa = _by_kind(k8s_docs, "HorizontalPodAutoscaler")["mm-bridge"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mm-bridge"
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"

    pdbs = _by_kind(k8s_docs, "PodDisruptionBudget").values()
    for name in (
        "mm-bridge",
        "mm-worker-sink-entities",
        "mm-worker-enrich-bitrix24",
        "mm-worker-egress",
    ):
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in pdbs), (
            name
        )


@pytest.mark.parametrize(
    "name,role,port",
    [
        ("mm-worker-sink-entities", "sink-entities", 9104),
        ("mm-worker-enrich-bitrix24", "enrich-bitrix24", 9103),
        ("mm-worker-egress", "egress", 9102),
    ],
)
def test_workers_expose_metrics_and_liveness(k8s_docs, name, role, port):
    container = _by_kind(k8s_docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["worker", role, "--metrics-port", str(port)]
    assert container["ports"][0]["containerPort"] == port
    probe = container["livenessProbe"]
    assert (
        str(port) in " ".join(probe["exec"]["command"])
        if "exec" in probe
        else probe["tcpSocket"]["port"] in (port, "metrics")
    )


# ---- KEDA: workers scale on consumer lag ---------------------------------------------------

# Deployment -> (its consumer group as the code derives it from the settings, topic role).
_WORKER_GROUPS = {
    "mm-worker-sink-entities": (lambda s: s.streams.entity_sink_group, "raw"),
    # No setting of its own: the sink group plus a suffix.
    "mm-worker-enrich-bitrix24": (enrich_group_id, "raw"),
    "mm-worker-egress": (lambda s: s.streams.egress_group, "egress"),
}


def test_workers_scale_on_consumer_lag_with_keda(k8s_docs, monkeypatch):
    deployments = _by_kind(k8s_docs, "Deployment")
    scaled = _by_kind(k8s_docs, "ScaledObject")
    config = next(d for d in k8s_docs if d["kind"] == "ConfigMap")["data"]
    catalog = load_catalog(TOPICS)
    defaults = Settings(_env_file=None)
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    deployed = Settings(_env_file=None)  # what the pods read from the ConfigMap
    [absent] = [r["expr"] for r in _alert_rules() if r["alert"] == "MMComponentAbsent"]
    assert set(scaled) == set(_WORKER_GROUPS)
    for name, obj in scaled.items():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        target = spec["scaleTargetRef"]["name"]
        assert target == name and target in deployments
        # KEDA owns the replica count: a `replicas` in the Deployment would fight it.
        assert "replicas" not in deployments[target]["spec"], target
        group_of, role = _WORKER_GROUPS[name]
        partitions = max(s.partitions for s in catalog.topics.values() if s.role == role)
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions, name
        [trigger] = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        group = group_of(deployed)
        assert meta["consumerGroup"] == group, name
        # The alert rules name components by the default groups (mm_up's label).
        assert group == group_of(defaults), name
        assert f'absent(mm_up{{component="{group}"}})' in absent, name
        assert meta["bootstrapServers"] == config["MM_KAFKA__BOOTSTRAP_SERVERS"], name
        assert meta["offsetResetPolicy"] == "earliest"  # the workers' auto.offset.reset
        assert int(meta["lagThreshold"]) > 0
        if "topic" in meta:
            assert meta["topic"] in catalog.topics, meta["topic"]


def test_no_hpa_competes_with_keda(k8s_docs):
    scaled = {
        o["spec"]["scaleTargetRef"]["name"] for o in _by_kind(k8s_docs, "ScaledObject").values()
    }
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in _by_kind(k8s_docs, "HorizontalPodAutoscaler").values()
    }
    assert hpas == {"mm-bridge"}
    assert not hpas & scaled


def test_migration_job_migrates_then_registers_schemas(k8s_docs):
    job = _by_kind(k8s_docs, "Job")["mm-migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    command = " ".join(container["command"] + container["args"])
    assert command.endswith(
        "mmctl migrate && mmctl schemas register --compatibility BACKWARD_TRANSITIVE"
    )
    # One owner of the topics in k8s: Strimzi's Topic Operator (kafkatopics.yaml).
    assert "topics apply" not in command


# ---- secrets have no working default (design.md invariant 11) -----------------------------

# Which production role relies on each secret the deployments hand over.
SECRET_ROLES = {
    "DATABASE_URL": "registry",
    "MM_AUTH__JWT_SECRET": "bridge",
    "MM_BITRIX24__WEBHOOK_URL": "egress",
    "MM_BITRIX24__APPLICATION_TOKENS": "bridge",
    "MM_ONEC__PASSWORD": "egress",
    "MM_COMMERCEML__PASSWORD": "bridge",
    "MM_ODATA__PASSWORD": "poll-odata",
}
# Secrets of optional parts, off by default: not in the Secret template's data (its comment
# names them), and in compose an empty default (never a working value).
OPTIONAL_SECRETS = {
    "MM_COMMERCEML__PASSWORD",
    "MM_ODATA__PASSWORD",
    "MM_BITRIX24__OAUTH__CLIENT_SECRET",
    "MM_BITRIX24__OAUTH__ACCESS_TOKEN",
    "MM_BITRIX24__OAUTH__REFRESH_TOKEN",
}
# Alertmanager's receivers: each optional, but render.sh refuses to start with none of them.
ALERT_SECRETS = {"TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SMTP_PASSWORD"}


def _settings_from_env(monkeypatch, env: dict[str, str]) -> Settings:
    import os

    for key in list(os.environ):
        if key.upper().startswith("MM_") or key.upper() in ("DATABASE_URL", "SCHEMA_REGISTRY_URL"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def test_the_k8s_template_placeholders_are_refused_at_start(k8s_docs, monkeypatch):
    from pydantic import ValidationError

    from mmstream.errors import ConfigurationError

    template = next(d for d in k8s_docs if d["kind"] == "Secret")
    assert set(template["stringData"]) <= set(SECRET_ROLES)
    for key, value in template["stringData"].items():
        try:
            settings = _settings_from_env(monkeypatch, {key: value})
        except ValidationError:
            continue  # not even a well-formed setting: the process does not start either
        with pytest.raises(ConfigurationError) as err:
            settings.check_secrets(SECRET_ROLES[key])
        assert "placeholder" in str(err.value), (key, str(err.value))


def test_k8s_template_names_every_secret_the_flows_need(k8s_docs):
    template = next(d for d in k8s_docs if d["kind"] == "Secret")
    assert set(template["stringData"]) == set(SECRET_ROLES) - OPTIONAL_SECRETS
    comment = (K8S / "secret.template.yaml").read_text(encoding="utf-8").split("\napiVersion:")[0]
    assert all(key in comment for key in OPTIONAL_SECRETS)


def _references(value: str) -> list[str]:
    return re.findall(r"\$\{[^}]*\}", value)


def test_compose_secrets_are_required_and_have_no_default(compose):
    seen = set()
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if not SECRET_NAME.search(key) or value is None:
                continue
            refs = _references(value)
            assert refs, f"{name}: {key} takes no variable"
            for ref in refs:
                if key in OPTIONAL_SECRETS | ALERT_SECRETS and re.fullmatch(r"\$\{\w+:-\}", ref):
                    continue  # an optional part's secret: empty unless set, never a default
                # ${VAR:?message} only: ${VAR:-default} / ${VAR-default} would be a working
                # default, a bare ${VAR} an empty secret.
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", ref), f"{name}: {key} uses {ref}"
            seen.add(key)
    assert {
        "DATABASE_URL",
        "MM_AUTH__JWT_SECRET",
        "MM_BITRIX24__WEBHOOK_URL",
        "MM_BITRIX24__APPLICATION_TOKENS",
        "MM_ONEC__PASSWORD",
    } <= seen


def test_app_services_get_every_secret_their_flow_needs(compose):
    for name in MM_SERVICES:
        env = _env(compose["services"][name])
        for key in (
            "DATABASE_URL",
            "MM_AUTH__JWT_SECRET",
            "MM_BITRIX24__WEBHOOK_URL",
            "MM_BITRIX24__APPLICATION_TOKENS",
            "MM_ONEC__BASE_URL",
            "MM_ONEC__PASSWORD",
            "SCHEMA_REGISTRY_URL",
            "MM_KAFKA__BOOTSTRAP_SERVERS",
        ):
            assert env.get(key), f"{name} lacks {key}"


def test_no_deployment_claims_the_embedded_profile(compose, k8s_docs):
    # MM_PROFILE=embedded lets a process run on the development secrets: `mmctl run` only.
    texts = [
        COMPOSE.read_text(encoding="utf-8"),
        (ROOT / "Dockerfile").read_text(encoding="utf-8"),
        *(p.read_text(encoding="utf-8") for p in K8S.iterdir()),
    ]
    assert not [t for t in texts if "MM_PROFILE" in t]


def test_commerceml_work_dir_is_a_writable_volume(compose, k8s_docs):
    work_dir = "/var/lib/mmstream/commerceml"
    bridge = compose["services"]["bridge"]
    assert _env(bridge)["MM_COMMERCEML__WORK_DIR"] == work_dir
    assert any(v.split(":")[1] == work_dir for v in bridge["volumes"])
    assert "commerceml-work" in compose["volumes"]
    pod = _by_kind(k8s_docs, "Deployment")["mm-bridge"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {"name": "MM_COMMERCEML__WORK_DIR", "value": work_dir} in container["env"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == work_dir)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume  # writable although the root filesystem is read-only
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "chown -R 10001:10001 /var/lib/mmstream" in dockerfile
