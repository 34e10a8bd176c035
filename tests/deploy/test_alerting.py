"""Alerts reach someone (issue 15, item 3): the rules pass promtool (syntax and unit tests),
the PrometheusRule for kube-prometheus is generated from the same file, the Alertmanager
configuration rendered from the environment passes amtool, routes every rule's alert to the
receivers of its severity, refuses to start with no receiver, and a real Alertmanager
delivers firing alerts to local Telegram, Slack and SMTP endpoints with the runbook section
in the message."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socketserver
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from mmstream.serve import free_port
from tests.deploy.test_deploy_files import DEPLOY, K8S, RUNBOOK, _alert_rules, _slug

ALERTMANAGER = DEPLOY / "alertmanager"
PROMETHEUS = DEPLOY / "prometheus"
# severity -> the receiver the route picks.
RECEIVER = {"critical": "mm-critical", "warning": "mm-warning", "info": "mm-info"}
ALL_RECEIVERS = {
    "TELEGRAM_BOT_TOKEN": "123456:test-token",
    "TELEGRAM_CHAT_ID": "-1001234567890",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "SLACK_CHANNEL": "#mm-alerts",
    "ALERT_EMAIL_TO": "oncall@corp.lan",
    "ALERT_EMAIL_FROM": "alertmanager@corp.lan",
    "SMTP_SMARTHOST": "smtp.corp.lan:587",
    "RUNBOOK_BASE_URL": "https://git.corp.lan/mm/-/blob/main",
}


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kwargs)


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    names = {"TELEGRAM_", "SLACK_", "ALERT_EMAIL_", "SMTP_", "RUNBOOK_", "ALERTMANAGER_"}
    return {**{k: v for k, v in os.environ.items() if not k.startswith(tuple(names))}, **extra}


def render(tmp_path: Path, env: dict[str, str]) -> Path:
    """alertmanager.yml and mm.tmpl as render.sh writes them (same awk program)."""
    out = tmp_path / "config"
    out.mkdir(exist_ok=True)
    full = _clean_env({**env, "ALERTMANAGER_CONFIG_DIR": str(out)})
    for source, target in (("alertmanager.yml.tmpl", "alertmanager.yml"), ("mm.tmpl", "mm.tmpl")):
        result = _run(
            "awk",
            "-f",
            str(ALERTMANAGER / "render.awk"),
            str(ALERTMANAGER / source),
            env=full,
            check=True,
        )
        (out / target).write_text(result.stdout, "utf-8")
    return out / "alertmanager.yml"


# ---- Prometheus rules -----------------------------------------------------------------


def test_promtool_checks_the_rules_and_the_config(tool):
    promtool = tool("promtool")
    rules = _run(promtool, "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(_alert_rules())} rules found" in rules.stdout
    config = _run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_unit_tests_of_the_rules(tool):
    result = _run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheusrule_is_generated_from_alerts_yml(tool, tmp_path):
    spec = importlib.util.spec_from_file_location("gen", DEPLOY / "gen_prometheusrule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (K8S / "prometheusrule.yaml").read_text("utf-8")
    assert module.render() == current, "stale: run `python deploy/gen_prometheusrule.py`"
    resource = yaml.safe_load(current)
    assert resource["kind"] == "PrometheusRule"
    assert (
        resource["spec"]["groups"]
        == yaml.safe_load((PROMETHEUS / "alerts.yml").read_text("utf-8"))["groups"]
    )
    # What the operator hands Prometheus is a valid rule file too.
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(resource["spec"]), "utf-8")
    result = _run(tool("promtool"), "check", "rules", str(tmp_path / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_routed_severity_and_a_runbook_section():
    anchors = {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+)$", RUNBOOK.read_text("utf-8"), re.M)}
    for rule in _alert_rules():
        assert rule["labels"]["severity"] in RECEIVER, rule["alert"]
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: docs/runbook.md has no #{anchor}"


# ---- Alertmanager configuration ----------------------------------------------------------


@pytest.mark.parametrize(
    "receivers",
    [
        ALL_RECEIVERS,
        {"TELEGRAM_BOT_TOKEN": "1:t", "TELEGRAM_CHAT_ID": "42"},
        {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"},
        {"ALERT_EMAIL_TO": "a@corp.lan", "SMTP_SMARTHOST": "smtp.corp.lan:25"},
    ],
    ids=["all", "telegram", "slack", "email"],
)
def test_amtool_accepts_the_rendered_config(tool, tmp_path, receivers):
    config = render(tmp_path, receivers)
    result = _run(tool("amtool"), "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout and "SUCCESS" in result.stdout


@pytest.mark.parametrize("awk", [["busybox", "awk"], ["mawk"], ["gawk"]], ids=" ".join)
def test_every_awk_renders_values_with_quotes_inside_their_yaml_string(tool, tmp_path, awk):
    # The image runs busybox's awk, the tests whatever `awk` is: all must agree.
    channel = '#a"b\\c\\\\d'
    env = _clean_env({**ALL_RECEIVERS, "SLACK_CHANNEL": channel})
    source = str(ALERTMANAGER / "alertmanager.yml.tmpl")
    out = _run(tool(awk[0]), *awk[1:], "-f", str(ALERTMANAGER / "render.awk"), source, env=env)
    assert out.returncode == 0, out.stderr
    reference = _run("awk", "-f", str(ALERTMANAGER / "render.awk"), source, env=env).stdout
    assert out.stdout == reference
    slack = yaml.safe_load(out.stdout)["receivers"][0]["slack_configs"][0]
    assert slack["channel"] == channel


def test_every_alert_is_routed_to_the_receiver_of_its_severity(tool, tmp_path):
    config = render(tmp_path, ALL_RECEIVERS)
    amtool = tool("amtool")
    for rule in _alert_rules():
        labels = [f"{k}={v}" for k, v in {"alertname": rule["alert"], **rule["labels"]}.items()]
        result = _run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == RECEIVER[rule["labels"]["severity"]], rule["alert"]
    unlabelled = _run(amtool, "config", "routes", "test", f"--config.file={config}", "alertname=X")
    assert unlabelled.stdout.strip() == "mm-warning"
    receivers = {r["name"]: r for r in yaml.safe_load(config.read_text("utf-8"))["receivers"]}
    assert set(receivers["mm-critical"]) == {
        "name",
        "telegram_configs",
        "slack_configs",
        "email_configs",
    }
    assert set(receivers["mm-warning"]) == {"name", "slack_configs", "email_configs"}
    assert set(receivers["mm-info"]) == {"name", "email_configs"}


@pytest.mark.parametrize(
    "env,message",
    [
        ({}, "no receiver configured"),
        ({"TELEGRAM_BOT_TOKEN": "1:t", "TELEGRAM_CHAT_ID": "@channel"}, "TELEGRAM_CHAT_ID must be"),
        ({"ALERT_EMAIL_TO": "a@corp.lan"}, "SMTP_SMARTHOST"),
    ],
)
def test_render_refuses_alerts_that_reach_nobody(tmp_path, env, message):
    full = _clean_env(
        {
            **env,
            "ALERTMANAGER_TEMPLATE_DIR": str(ALERTMANAGER),
            "ALERTMANAGER_CONFIG_DIR": str(tmp_path),
            "ALERTMANAGER_BIN": "/bin/true",
        }
    )
    result = _run("sh", str(ALERTMANAGER / "render.sh"), env=full)
    assert result.returncode == 2
    assert message in result.stderr


# ---- a real Alertmanager delivers ----------------------------------------------------------


class _Capture(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, dict]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 — http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append((self.path, json.loads(body or b"{}")))
        if "/telegram/" in self.path:  # the Bot API's answer shape
            reply = {
                "ok": True,
                "result": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": -1001234567890, "type": "group"},
                },
            }
        else:
            reply = {"ok": True}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class _SMTP(socketserver.ThreadingTCPServer):
    """Just enough SMTP (RFC 5321, no TLS, no AUTH) to receive Alertmanager's mails."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.mails: list[str] = []


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        data: list[bytes] | None = None
        for line in self.rfile:
            if data is not None:
                if line in (b".\r\n", b".\n"):
                    self.server.mails.append(b"".join(data).decode("utf-8", "replace"))
                    data = None
                    self.wfile.write(b"250 queued\r\n")
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                data = []
                self.wfile.write(b"354 go on\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def _serve(server) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def _alert(rule_name: str) -> dict:
    rule = next(r for r in _alert_rules() if r["alert"] == rule_name)
    return {
        "labels": {"alertname": rule_name, **rule["labels"], "component": "test"},
        "annotations": {
            "summary": f"{rule_name} fired in the test",
            "runbook_url": rule["annotations"]["runbook_url"],
        },
    }


def test_alertmanager_delivers_each_severity_to_its_receivers(tool, tmp_path):
    binary = tool("prometheus-alertmanager")
    tool("amtool")
    http, smtp = _Capture(), _SMTP()
    _serve(http)
    _serve(smtp)
    base = f"http://127.0.0.1:{http.server_address[1]}"
    port = free_port()
    env = _clean_env(
        {
            **ALL_RECEIVERS,
            "TELEGRAM_API_URL": f"{base}/telegram",
            "SLACK_WEBHOOK_URL": f"{base}/slack",
            "SMTP_SMARTHOST": f"127.0.0.1:{smtp.server_address[1]}",
            "SMTP_REQUIRE_TLS": "false",
            "ALERTMANAGER_GROUP_WAIT": "1s",
            "ALERTMANAGER_TEMPLATE_DIR": str(ALERTMANAGER),
            "ALERTMANAGER_CONFIG_DIR": str(tmp_path / "config"),
            "ALERTMANAGER_BIN": binary,
        }
    )
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            "sh",
            str(ALERTMANAGER / "render.sh"),
            f"--storage.path={tmp_path / 'data'}",
            "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "alertmanager.log"
            ).read_text()
            time.sleep(0.2)
        critical, warning, info = (
            _alert("MMComponentDown"),
            _alert("MMConsumerLagGrowing"),
            _alert("MMEgressBudgetSaturated"),
        )
        assert [a["labels"]["severity"] for a in (critical, warning, info)] == [
            "critical",
            "warning",
            "info",
        ]
        httpx.post(
            f"{url}/api/v2/alerts", json=[critical, warning, info], timeout=5
        ).raise_for_status()
        deadline = time.monotonic() + 30
        while len(http.posts) < 3 or len(smtp.mails) < 3:
            assert time.monotonic() < deadline, (
                http.posts,
                smtp.mails,
                (tmp_path / "alertmanager.log").read_text(),
            )
            time.sleep(0.2)
        time.sleep(1.5)  # anything routed wrongly would arrive by now as well
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        http.shutdown()
        smtp.shutdown()
    telegram = [body for path, body in http.posts if path.startswith("/telegram/")]
    slack = [body for path, body in http.posts if path == "/slack"]
    # Telegram: critical only, through the Bot API of the configured token.
    assert len(telegram) == 1
    assert "MMComponentDown fired in the test" in telegram[0]["text"]
    assert str(telegram[0]["chat_id"]) == ALL_RECEIVERS["TELEGRAM_CHAT_ID"]
    assert any(
        p == f"/telegram/bot{ALL_RECEIVERS['TELEGRAM_BOT_TOKEN']}/sendMessage"
        for p, _ in http.posts
    )
    # Slack: critical and warning.
    texts = sorted(a["text"] for body in slack for a in body["attachments"])
    assert len(texts) == 2
    assert "MMComponentDown fired" in texts[0] and "MMConsumerLagGrowing fired" in texts[1]
    # E-mail: all three.
    assert len(smtp.mails) == 3
    assert all("oncall@corp.lan" in m for m in smtp.mails)
    # Each message names the runbook section and links it under RUNBOOK_BASE_URL.
    link = f"{ALL_RECEIVERS['RUNBOOK_BASE_URL']}/docs/runbook.md#component-down"
    assert f"Runbook, section component-down: {link}" in telegram[0]["text"]
    assert f"Runbook, section component-down: {link}" in texts[0]
    assert "Runbook, section consumer-lag:" in texts[1]
