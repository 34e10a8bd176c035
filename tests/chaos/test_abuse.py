"""Chaos: abuse of a real bridge process at every route it serves.

Against the bridge as it is served (`mmctl bridge`, on the test's broker and PostgreSQL), all
on 127.0.0.1 and every loop bounded:

- schemathesis over every operation of the served document, valid and invalid inputs
  (at least 3,000 cases in full mode, 300 in quick, 100 in the short form of make test);
- zip bombs (a 4 MiB member plus 39 members of the same name), a billion-laughs XML and
  8 MB of unknown elements uploaded to /1c_exchange and imported;
- deeply nested JSON at the 1С push routes, huge forms at the Bitrix24 event handler;
- thousands of CommerceML sessions (checkauth loops);
- slow clients: partial headers and bodies dribbled in, then abandoned (bounded in time);
- Bitrix24 events with forged application tokens and unknown portals.

Pass: no answer is a 5xx (and the bridge logs no unhandled error), the bridge process's RSS
stays under 300 MB throughout (sampled), and nothing is published from a refused request:
the records on the raw topics are exactly what the 2xx answers said they published.
"""

from __future__ import annotations

import base64
import io
import json
import math
import socket
import threading
import time
import uuid
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy

import httpx
import hypothesis
import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error

from mmstream.topics import load_catalog
from tests.support.bitrix24 import event_body, with_tokens
from tests.support.stack import onec_product
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

RSS_LIMIT = 300 * 1024 * 1024
CML_PASSWORD = uuid.uuid4().hex + "Zq"  # random: the bridge refuses weak ones


@dataclass(frozen=True)
class Size:
    fuzz_cases: int  # schemathesis cases over all operations, at least
    sessions: int  # CommerceML checkauth loops
    forged: int  # forged Bitrix24 events
    slow_clients: int
    slow_s: float


SIZES = {
    "short": Size(120, 60, 100, 10, 4.0),
    # quick: the whole suite in 5 minutes — the 10,000 sessions and the 3,000 fuzz cases
    # run in full (the fuzz is most of this scenario's time)
    "quick": Size(300, 500, 300, 20, 4.0),
    "full": Size(2000, 10_000, 3000, 100, 20.0),
}


@dataclass
class Tally:
    """Every answer of the scenario, and the records its 2xx answers say were published."""

    statuses: Counter = field(default_factory=Counter)
    server_errors: list = field(default_factory=list)
    published: int = 0
    offered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, method: str, path: str, status: int, headers, body: bytes) -> None:
        with self.lock:
            self.offered += 1
            self.statuses[status] += 1
            if status >= 500:
                self.server_errors.append((what, method, path, status, body[:300]))
            elif 200 <= status < 300:
                self.published += _published(method, path, headers, body)


def _published(method: str, path: str, headers, body: bytes) -> int:
    """How many records a 2xx answer says it published (replays and duplicates: none)."""
    if method != "POST" or headers.get("idempotent-replayed") == "true":
        return 0
    try:
        doc = json.loads(body)
    except ValueError:
        return 0  # CommerceML answers text; the scenario's imports publish nothing valid
    if not isinstance(doc, dict):
        return 0
    if path.startswith("/v1/onec/"):
        if doc.get("duplicate_message"):
            return 0
        return int(doc["accepted"]) if path.endswith("/batch") else 1
    if path.startswith("/v1/bitrix24/events"):
        return 1 if doc.get("status") == "accepted" else 0
    return 0


class RssWatch:
    """The bridge process's peak RSS (with any children), sampled every 0.1 s."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        procs = [self.proc, *self.proc.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._sample())
            except psutil.Error:
                return
            self._stop.wait(0.1)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def bridge(pipeline):
    """A bridge process accepting the test portal's events and CommerceML; verified callers'
    limits out of the fuzzer's way (abuse without credentials keeps its own, default limits)."""
    s = with_tokens(pipeline.settings, event_dedupe_window_s=0.0)
    s = s.model_copy(
        update={
            "ingress": s.ingress.model_copy(
                update={"client_rate_per_s": 100_000.0, "client_burst": 100_000}
            ),
            "commerceml": s.commerceml.model_copy(update={"password": SecretStr(CML_PASSWORD)}),
        }
    )
    pipeline.settings = s
    pipeline.start_bridge()
    return pipeline


def _raw_topic_counts(settings) -> dict[str, int]:
    """Records on every raw topic (read in parallel: each read waits for a quiet second)."""
    catalog = load_catalog(settings.topics_file)
    names = [name for name, spec in catalog.topics.items() if spec.role == "raw"]
    with ThreadPoolExecutor(len(names)) as pool:
        counts = pool.map(lambda name: len(count_records(settings, name, quiet_s=1.0)), names)
        return dict(zip(names, counts, strict=True))


# -- traffic -------------------------------------------------------------------------------


def _fuzz(url: str, token: str, total_cases: int, tally: Tally) -> int:
    """Schemathesis over every operation and both generation modes, pass after pass (each
    with its own seed) until ``total_cases`` were sent; bounded to six passes. The first
    pass covers every operation in full; a later one stops once the total is reached."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    per_run = max(5, math.ceil(total_cases / (len(operations) * len(modes))))
    ran = 0
    # One session for every case: without it each call built its own (and its connection).
    # It keeps no cookie: each case is sent as it was generated, as before.
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    for seed in range(6):
        for operation, mode in ((o, m) for o in operations for m in modes):
            if seed and ran >= total_cases:
                break

            @hypothesis.seed(seed)
            @hypothesis.settings(
                max_examples=per_run,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode))
            def run(case) -> None:
                nonlocal ran
                ran += 1
                response = case.call(
                    base_url=url,
                    session=session,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
                tally.add(
                    "fuzz",
                    case.method.upper(),
                    response.request.path_url.split("?")[0],
                    response.status_code,
                    response.headers,
                    response.content,
                )
                case.validate_response(response, checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:
                pass
            except (AssertionError, BaseExceptionGroup):
                pass  # the 5xx is in the tally already
        if ran >= total_cases:
            break
    session.close()
    return ran


class Cml:
    """A CommerceML client: checkauth, then the session cookie."""

    def __init__(self, client: httpx.Client, user: str) -> None:
        self.client = client
        self.user = user
        self.cookie: str | None = None

    def call(
        self, tally: Tally, what: str, mode: str, body: bytes | None = None, **params
    ) -> httpx.Response:
        query = {"type": "catalog", "mode": mode, **params}
        headers = {}
        if mode == "checkauth":
            basic = base64.b64encode(f"{self.user}:{CML_PASSWORD}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        elif self.cookie:
            headers["Cookie"] = self.cookie
        if body is None:
            resp = self.client.get("/1c_exchange", params=query, headers=headers)
        else:
            resp = self.client.post("/1c_exchange", params=query, headers=headers, content=body)
        tally.add(
            what,
            "POST" if body is not None else "GET",
            "/1c_exchange",
            resp.status_code,
            resp.headers,
            resp.content,
        )
        if mode == "checkauth" and resp.status_code == 200:
            lines = resp.text.splitlines()
            self.cookie = f"{lines[1]}={lines[2]}"
        return resp


def _zip_bomb() -> bytes:
    """A small zip: a 4 MiB member and 39 more members under the same name."""
    member = b"<" + b"A" * (4 * 1024 * 1024) + b">"
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names: the point
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for _ in range(40):
                zf.writestr("import.xml", member)
    return out.getvalue()


def _billion_laughs() -> bytes:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
        for n in range(1, 10)
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE КоммерческаяИнформация [\n'
        + "\n".join(entities)
        + ']>\n<КоммерческаяИнформация ВерсияСхемы="2.10">'
        "<Каталог><Наименование>&lol9;</Наименование></Каталог></КоммерческаяИнформация>"
    ).encode()


def _unknown_elements(size: int) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация ВерсияСхемы="2.10">'
    unit = "<Неизвестный><Ещё>значение</Ещё></Неизвестный>"
    body = unit * (size // len(unit.encode()))
    return (head + body + "</КоммерческаяИнформация>").encode()


def _upload_and_import(cml: Cml, tally: Tally, name: str, data: bytes, chunk: int) -> list[int]:
    statuses = []
    for start in range(0, len(data), chunk):
        statuses.append(
            cml.call(tally, name, "file", data[start : start + chunk], filename=name).status_code
        )
        if statuses[-1] != 200:
            break
    imported = "import.xml" if name.endswith(".zip") else name
    statuses.append(cml.call(tally, name, "import", filename=imported).status_code)
    return statuses


def _bombs(client: httpx.Client, tally: Tally, chunk: int) -> dict[str, list[int]]:
    cml = Cml(client, "site")
    assert cml.call(tally, "bomb", "checkauth").status_code == 200
    cml.call(tally, "bomb", "init")
    return {
        "zip_bomb": _upload_and_import(cml, tally, "bomb.zip", _zip_bomb(), chunk),
        "billion_laughs": _upload_and_import(cml, tally, "laughs.xml", _billion_laughs(), chunk),
        "unknown_8mb": _upload_and_import(
            cml, tally, "unknown.xml", _unknown_elements(8 * 1024 * 1024), chunk
        ),
    }


def _deep_json_and_forms(client: httpx.Client, token: str, tally: Tally) -> None:
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for depth in (100, 10_000, 1_000_000):
        body = ("[" * depth + "]" * depth).encode()
        for path in ("/v1/onec/products", "/v1/onec/products/batch", "/v1/onec/Склады/batch"):
            resp = client.post(path, content=body, headers=auth)
            tally.add("deep_json", "POST", path, resp.status_code, resp.headers, resp.content)
        deep_obj = ('{"a":' * depth + "1" + "}" * depth).encode()
        resp = client.post("/v1/onec/products", content=deep_obj, headers=auth)
        tally.add(
            "deep_json", "POST", "/v1/onec/products", resp.status_code, resp.headers, resp.content
        )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bodies = [
        "&".join(f"data[FIELDS][F{n}]=x" for n in range(20_000)),
        "event=ONCRMDEALUPDATE&data" + "[a]" * 5000 + "=1",
        "event=ONCRMDEALUPDATE&" + "&".join(f"data[{n}][{n}][{n}]=y" for n in range(150)),
        "data[" + "k" * 60_000 + "]=1",
    ]
    for body in bodies:
        resp = client.post("/v1/bitrix24/events", content=body.encode(), headers=form)
        tally.add(
            "huge_form", "POST", "/v1/bitrix24/events", resp.status_code, resp.headers, resp.content
        )


def _forged_events(client: httpx.Client, tally: Tally, count: int) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for n in range(count):
        kind = n % 3
        if kind == 0:
            body = event_body("ONCRMDEALUPDATE", n + 1, token=uuid.uuid4().hex)
        elif kind == 1:
            body = event_body("ONCRMDEALUPDATE", n + 1, member_id=uuid.uuid4().hex)
        else:
            body = event_body("ONCRMDEALUPDATE", n + 1, token="")
        resp = client.post("/v1/bitrix24/events", content=body, headers=form)
        tally.add(
            "forged", "POST", "/v1/bitrix24/events", resp.status_code, resp.headers, resp.content
        )


def _genuine(client: httpx.Client, token: str, tally: Tally) -> None:
    """A few real requests among the abuse: they must get through and be counted."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for n in range(5):
        resp = client.post(
            "/v1/bitrix24/events", content=event_body("ONCRMDEALUPDATE", 900_000 + n), headers=form
        )
        tally.add(
            "genuine", "POST", "/v1/bitrix24/events", resp.status_code, resp.headers, resp.content
        )
        resp = client.post(
            "/v1/onec/products", json=onec_product(), headers={"Authorization": f"Bearer {token}"}
        )
        tally.add(
            "genuine", "POST", "/v1/onec/products", resp.status_code, resp.headers, resp.content
        )


def _sessions(client: httpx.Client, tally: Tally, count: int) -> None:
    cml = Cml(client, "site")
    for _ in range(count):
        cml.cookie = None
        cml.call(tally, "sessions", "checkauth")


def _slow_clients(host: str, port: int, token: str, count: int, seconds: float) -> int:
    """Open ``count`` connections that dribble partial headers or bodies, then abandon them."""
    socks = []
    for n in range(count):
        s = socket.create_connection((host, port), timeout=5)
        if n % 2:
            s.sendall(b"POST /v1/onec/products HTTP/1.1\r\nHost: bridge\r\n")  # headers never end
        else:
            s.sendall(
                (
                    f"POST /v1/onec/products HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer "
                    f"{token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                    '{"Ref_Key": "'
                ).encode()
            )
        socks.append(s)
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        for s in socks:
            try:
                s.sendall(b"X-Slow: 1\r\n" if socks.index(s) % 2 else b"a")
                sent += 1
            except OSError:
                pass
        time.sleep(0.5)
    for s in socks:
        s.close()
    return sent


def _bridge_errors(proc) -> list[str]:
    """The bridge's ERROR log lines, each as its message and the last line of its traceback."""
    out = []
    for line in proc.tail(1_000_000).splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("level") in ("ERROR", "CRITICAL"):
            tail = (doc.get("exc_info") or "").strip().splitlines()[-1:]
            out.append(" | ".join([doc.get("message", ""), *tail]))
    return out


class Phases:
    """Seconds spent per phase of the scenario (for the report's notes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 1)


# -- the scenario --------------------------------------------------------------------------


def test_abuse_gives_no_5xx_bounded_memory_and_publishes_nothing_refused(
    bridge, chaos_mode, chaos_report
):
    size = SIZES[chaos_mode]
    settings, token = bridge.settings, bridge.token
    url = bridge.bridge_url
    began = time.monotonic()
    before = _raw_topic_counts(settings)
    tally = Tally()
    proc = bridge.procs["bridge"]
    outcomes: dict = {}
    with RssWatch(proc.popen.pid) as rss, httpx.Client(base_url=url, timeout=60) as client:
        # Slow clients hold their connections while the rest of the abuse runs beside them.
        slow = threading.Thread(
            target=lambda: outcomes.update(
                slow_sent=_slow_clients(
                    settings.ingress.host,
                    settings.ingress.port,
                    token,
                    size.slow_clients,
                    size.slow_s,
                )
            )
        )
        slow.start()
        timer = Phases()
        with timer("genuine"):
            _genuine(client, token, tally)
        with timer("bombs"):
            outcomes["bombs"] = _bombs(client, tally, settings.commerceml.file_limit_bytes // 2)
        with timer("deep_json_forms"):
            _deep_json_and_forms(client, token, tally)
        with timer("forged"):
            _forged_events(client, tally, size.forged)
        with timer("slow_clients"):
            slow.join(size.slow_s + 30)
        live = client.get("/health/live")
        outcomes["live_after_slow_clients"] = live.status_code
        with timer("sessions"):
            _sessions(client, tally, size.sessions)
        with timer("fuzz"):
            outcomes["fuzz_cases"] = _fuzz(url, token, size.fuzz_cases, tally)
        _genuine(client, token, tally)
        peak = rss.peak
    after = _raw_topic_counts(settings)
    stored = sum(after.values()) - sum(before.values())
    errors = _bridge_errors(proc)
    unhandled = len(errors)
    alive = proc.alive()
    verdict = (
        not tally.server_errors
        and unhandled == 0
        and alive
        and peak < RSS_LIMIT
        and stored == tally.published
        and outcomes["live_after_slow_clients"] == 200
        and (chaos_mode == "short" or outcomes["fuzz_cases"] >= size.fuzz_cases)
    )
    chaos_report.record(
        "abuse",
        verdict=verdict,
        offered=tally.offered,
        accepted=tally.published,
        stored=stored,
        lost=max(0, tally.published - stored),
        duplicated=max(0, stored - tally.published),
        seconds=time.monotonic() - began,
        notes=(
            f"peak bridge RSS {peak / 2**20:.0f} MB (limit 300); 5xx {len(tally.server_errors)}, "
            f"unhandled errors logged {unhandled}; fuzz cases {outcomes['fuzz_cases']}; "
            f"CommerceML sessions {size.sessions}; statuses {dict(sorted(tally.statuses.items()))}; "
            f"bombs {outcomes['bombs']}; seconds by phase {timer.seconds}"
        ),
        peak_rss_mb=round(peak / 2**20),
        statuses=dict(tally.statuses),
        bombs=outcomes["bombs"],
        fuzz_cases=outcomes["fuzz_cases"],
        server_errors=[list(map(str, e)) for e in tally.server_errors[:20]],
        bridge_errors=errors[:20],
    )
    assert alive, proc.tail()
    assert not tally.server_errors, (tally.server_errors[:20], errors[:20])
    assert unhandled == 0, errors[:20]
    assert peak < RSS_LIMIT, f"bridge RSS peaked at {peak / 2**20:.0f} MB"
    assert stored == tally.published, (before, after, tally.published)
    assert outcomes["live_after_slow_clients"] == 200
    if chaos_mode != "short":
        assert outcomes["fuzz_cases"] >= size.fuzz_cases
