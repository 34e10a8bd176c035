"""``mmctl health`` for scripts and probes: real broker, database and HTTP targets."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.topics import load_catalog
from tests.mmstream.cli.conftest import Mmctl

ONEC_PASSWORD = "integration-password-for-the-health-test"
CIRCUITS = (
    "# TYPE mm_egress_circuit_state gauge\n"
    'mm_egress_circuit_state{target="bitrix24"} 0.0\n'
    'mm_egress_circuit_state{target="onec"} 2.0\n'
)


class _Metrics(BaseHTTPRequestHandler):
    """An egress worker's /metrics with one open circuit (the circuits check reads only it)."""

    def do_GET(self):  # noqa: N802 — http.server's naming
        body = CIRCUITS.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def target_url():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def reachable(pipeline):
    """The real targets: the Bitrix24 emulator behind the test's webhook and the 1С emulator
    requiring its integration user's password, as a base does."""
    s = pipeline.settings
    pipeline.settings = s.model_copy(
        update={"onec": s.onec.model_copy(update={"password": SecretStr(ONEC_PASSWORD)})}
    )
    apply(pipeline.settings, load_catalog(pipeline.settings.topics_file))
    pipeline.start_emulator()
    pipeline.start_onec_emulator()
    return pipeline.settings


def _webhook_code(settings) -> str:
    return settings.bitrix24.webhook_url.get_secret_value().rstrip("/").rsplit("/", 1)[-1]


def _by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_everything_up(reachable):
    mmctl = Mmctl(reachable)
    report = _by_name(mmctl.json("health"))
    for name in ("broker", "database", "schema-registry", "bitrix24", "onec"):
        assert report[name]["status"] == "ok", report[name]
    declared = len(load_catalog(reachable.topics_file).topics)
    assert report["broker"]["detail"].startswith(
        f"1 broker(s), {declared}/{declared} declared topics"
    )
    assert report["bitrix24"]["detail"].startswith("authenticated (server.time 20")
    assert report["onec"]["detail"] == "ping: HTTP 200; $metadata: HTTP 200"
    assert report["circuits"]["status"] == "n/a"  # no egress worker in this test
    table = mmctl("health").stdout
    code = _webhook_code(reachable)
    assert "overall: ok" in table and code not in table and ONEC_PASSWORD not in table
    assert report["bitrix24"]["target"].endswith("/rest/1/***/")


def test_a_revoked_webhook_is_down_not_reachable(reachable):
    """Any answer used to count: a portal refusing the webhook looked healthy (HTTP 401)."""
    url = reachable.bitrix24.webhook_url.get_secret_value().replace(
        _webhook_code(reachable), "0" * 32
    )
    revoked = reachable.model_copy(
        update={"bitrix24": reachable.bitrix24.model_copy(update={"webhook_url": SecretStr(url)})}
    )
    out = Mmctl(revoked)("health", "--output", "json", "--check", "bitrix24", expect=1)
    (check,) = json.loads(out.stdout)["checks"]
    assert check["status"] == "down"
    assert check["detail"].startswith("credentials refused (HTTP 401)"), check


def test_a_refused_1c_user_and_a_wrong_1c_path_are_down(reachable):
    wrong_user = reachable.model_copy(
        update={
            "onec": reachable.onec.model_copy(
                update={"password": SecretStr("not-the-password-of-this-infobase-user")}
            )
        }
    )
    out = Mmctl(wrong_user)("health", "--output", "json", "--check", "onec", expect=1)
    (check,) = json.loads(out.stdout)["checks"]
    assert check["status"] == "down"
    assert check["detail"] == (
        "ping: credentials refused (HTTP 401); $metadata: credentials refused (HTTP 401)"
    )

    base = reachable.onec.base_url.replace("/hs/mm/", "/hs/mm-wrong/")
    wrong_path = reachable.model_copy(
        update={"onec": reachable.onec.model_copy(update={"base_url": base})}
    )
    out = Mmctl(wrong_path)("health", "--output", "json", "--check", "onec", expect=1)
    (check,) = json.loads(out.stdout)["checks"]
    assert check["status"] == "down"
    assert check["detail"] == "ping: wrong base path (HTTP 404); $metadata: HTTP 200"


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
    lines = {
        ln.split()[0]: ln.split()[1]
        for ln in out.splitlines()[2:]
        if ln and not ln.startswith("overall")
    }
    assert lines["circuit:bitrix24"] == "ok" and lines["circuit:onec"] == "down"
