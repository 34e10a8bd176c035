"""``mmctl health`` for scripts and probes: real broker, database and HTTP targets."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from mmstream.embedded.ports import free_port
from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog
from tests.mmstream.cli.conftest import Mmctl

SECRET = "s3cretwebhookcode"
CIRCUITS = ('# TYPE mm_egress_circuit_state gauge\n'
            'mm_egress_circuit_state{target="bitrix24"} 0.0\n'
            'mm_egress_circuit_state{target="onec"} 2.0\n')


class _Target(BaseHTTPRequestHandler):
    """Stands in for Bitrix24, 1C, the schema registry and an egress worker's /metrics."""

    def do_GET(self):  # noqa: N802 — http.server's naming
        body = (CIRCUITS if self.path == "/metrics" else "[]").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def target_url():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def reachable(settings, target_url):
    apply(settings, load_catalog(settings.topics_file))
    return settings.model_copy(update={
        "schema_registry_url": target_url,
        "bitrix24": settings.bitrix24.model_copy(
            update={"webhook_url": SecretStr(f"{target_url}/rest/1/{SECRET}/")}),
        "onec": settings.onec.model_copy(update={"base_url": f"{target_url}/trade/hs/mm/"}),
    })


def _by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_everything_up(reachable):
    mmctl = Mmctl(reachable)
    report = _by_name(mmctl.json("health"))
    for name in ("broker", "database", "schema-registry", "bitrix24", "onec"):
        assert report[name]["status"] == "ok", report[name]
    declared = len(load_catalog(reachable.topics_file).topics)
    assert report["broker"]["detail"].startswith(f"1 broker(s), {declared}/{declared} declared topics")
    assert report["circuits"]["status"] == "n/a"  # no egress worker in this test
    table = mmctl("health").stdout
    assert "overall: ok" in table and SECRET not in table
    assert report["bitrix24"]["target"].endswith("/rest/1/***/")


def test_database_down_fails_the_probe(reachable):
    closed = f"postgresql://mm:pw@127.0.0.1:{free_port()}/mm"
    mmctl = Mmctl(reachable.model_copy(update={"database_url": SecretStr(closed)}))
    out = mmctl("health", "--output", "json", "--timeout", "3", expect=1)
    report = json.loads(out.stdout)
    assert report["status"] == "down"
    checks = _by_name(report)
    assert checks["database"]["status"] == "down"
    assert "pw" not in checks["database"]["target"]
    assert checks["broker"]["status"] == "ok"


def test_open_circuit_is_down(reachable, target_url):
    out = Mmctl(reachable)("health", "--metrics-url", f"{target_url}/metrics", expect=1).stdout
    lines = {ln.split()[0]: ln.split()[1] for ln in out.splitlines()[2:] if ln and not ln.startswith("overall")}
    assert lines["circuit:bitrix24"] == "ok" and lines["circuit:onec"] == "down"
