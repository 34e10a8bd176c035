"""`mmctl health`: is each dependency reachable right now? For scripts, probes and people.

Every check has its own time limit and they run in parallel, so the whole answer comes
within about one limit. Each target is checked with one cheap *authenticated* call, with the
credentials the workers use — a revoked webhook or a wrong 1С path must not look healthy:

* Bitrix24: ``server.time`` (allowed to every webhook and application, one request of the
  portal budget) through the workers' own client, webhook or OAuth alike;
* 1С: the HTTP service's ``ping`` and the OData ``$metadata`` with the infobase user.

401/403 is ``down`` "credentials refused", 404 ``down`` "wrong base path", a rate limit or a
5xx ``degraded`` (the target is there and the credentials were not refused). Targets are
shown without secrets (the Bitrix24 webhook code, URL passwords). Circuit states live in
the egress workers; they are read from their /metrics. ``names`` selects checks: the workers'
readiness probes run ``mmctl health --check bitrix24 --check onec``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from alembic.script import ScriptDirectory
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, pool, text

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import Bitrix24Error
from connectors.onec.client import odata_url_of
from mmstream.avro_serde import registry_client, registry_error
from mmstream.errors import classify
from mmstream.settings import Settings, mask_url
from mmstream.topics import effective_specs, load_catalog

OK, DEGRADED, DOWN, NA = "ok", "degraded", "down", "n/a"
_SEVERITY = {NA: 0, OK: 0, DEGRADED: 1, DOWN: 2}
_CIRCUIT = {
    0: (OK, "closed"),
    1: (DEGRADED, "half-open: probing the target"),
    2: (DOWN, "open: calls to the target are suspended"),
}


@dataclass(frozen=True)
class Check:
    """One line of the health report."""

    name: str
    status: str
    detail: str
    target: str = ""
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def overall(checks: list[Check]) -> str:
    """The worst status: down > degraded > ok (n/a counts as ok: not configured here)."""
    worst = max((_SEVERITY[c.status] for c in checks), default=0)
    return {0: OK, 1: DEGRADED, 2: DOWN}[worst]


def mask_webhook(url: str) -> str:
    """A Bitrix24 webhook URL with its secret code (the last path segment) hidden."""
    parts = urlsplit(mask_url(url))
    segments = parts.path.rstrip("/").split("/")
    if len(segments) > 1 and segments[-1]:
        segments[-1] = "***"
    return urlunsplit(parts._replace(path="/".join(segments) + "/", query=""))


def _timed(name: str, target: str, probe: Callable[[], tuple[str, str]]) -> Check:
    started = time.monotonic()
    try:
        status, detail = probe()
    except Exception as exc:  # noqa: BLE001 — any failure of a probe is the answer "down"
        status, detail = DOWN, str(classify(exc)).splitlines()[0][:300]
    return Check(name, status, detail, target, round((time.monotonic() - started) * 1000, 1))


def check_broker(settings: Settings, timeout_s: float) -> Check:
    """Metadata from the cluster, and whether every declared topic exists."""

    def probe() -> tuple[str, str]:
        admin = AdminClient(
            {**settings.kafka.client_config(), "socket.timeout.ms": int(timeout_s * 1000)},
            logger=logging.getLogger("librdkafka"),
        )
        md = admin.list_topics(timeout=timeout_s)
        declared = [s.name for s in effective_specs(settings, load_catalog(settings.topics_file))]
        missing = [n for n in declared if n not in md.topics]
        detail = f"{len(md.brokers)} broker(s), {len(declared) - len(missing)}/{len(declared)} declared topics"
        if missing:
            return (
                DEGRADED,
                f"{detail}; missing {missing[:5]}{' …' if len(missing) > 5 else ''} "
                "(run `mmctl topics apply`)",
            )
        return OK, detail

    return _timed("broker", settings.kafka.bootstrap_servers, probe)


def check_database(settings: Settings, timeout_s: float) -> Check:
    """A connection, and the schema at the newest migration."""

    if settings.database_url is None:
        return Check("database", DOWN, "not configured: set DATABASE_URL")
    url = settings.require_database_url()

    def probe() -> tuple[str, str]:
        engine = create_engine(
            url, poolclass=pool.NullPool, connect_args={"connect_timeout": max(1, int(timeout_s))}
        )
        try:
            with engine.connect() as conn:
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        finally:
            engine.dispose()
        heads = ScriptDirectory(str(settings.migrations_dir)).get_heads()
        if current not in heads:
            return (
                DEGRADED,
                f"migration {current}, code expects {', '.join(heads)} (run `mmctl migrate`)",
            )
        return OK, f"migration {current}"

    return _timed("database", mask_url(url), probe)


def check_http(
    name: str, shown: str, url: str, timeout_s: float, *, need_ok: bool = False
) -> Check:
    """Reachability: any HTTP answer counts, unless ``need_ok`` (our own services)."""

    def probe() -> tuple[str, str]:
        resp = httpx.get(url, timeout=timeout_s, follow_redirects=False)
        if need_ok and resp.status_code != 200:
            return DOWN, f"HTTP {resp.status_code}"
        return OK, f"reachable (HTTP {resp.status_code})"

    return _timed(name, shown, probe)


def judge(status: int) -> tuple[str, str]:
    """A target's HTTP status, as a health verdict (see the module docstring)."""
    if 200 <= status < 300:
        return OK, f"HTTP {status}"
    if status in (401, 403):
        return DOWN, f"credentials refused (HTTP {status})"
    if status == 404:
        return DOWN, "wrong base path (HTTP 404)"
    if status in (429, 503) or status >= 500:
        return DEGRADED, f"answering HTTP {status}: busy or failing, credentials not refused"
    return DOWN, f"unexpected HTTP {status}"


def check_bitrix24(settings: Settings, timeout_s: float) -> Check:
    """``server.time`` through the egress workers' client (webhook or OAuth tokens)."""

    bx = settings.bitrix24
    shown = (
        mask_webhook(bx.webhook_url.get_secret_value())
        if bx.auth_mode == "webhook"
        else f"oauth {bx.oauth.portal}"
    )
    quick = settings.model_copy(update={"bitrix24": bx.model_copy(update={"timeout_s": timeout_s})})

    async def call() -> str:
        client = Bitrix24Client.for_worker(quick)
        try:
            return str(await client.call("server.time"))
        finally:
            await client.aclose()

    def probe() -> tuple[str, str]:
        try:
            portal_time = asyncio.run(call())
        except Bitrix24Error as exc:
            if exc.status is None:
                raise  # no answer at all: down, with the client's reason
            status, verdict = judge(exc.status)
            return status, f"{verdict}: {exc.code}"
        return OK, f"authenticated (server.time {portal_time})"

    return _timed("bitrix24", shown, probe)


def check_onec(settings: Settings, timeout_s: float) -> Check:
    """The HTTP service's ``ping`` and OData ``$metadata``, as the infobase user."""

    onec = settings.onec
    odata = onec.odata_url or odata_url_of(onec.base_url)
    auth = (onec.username, onec.password.get_secret_value())

    def probe() -> tuple[str, str]:
        verdicts = []
        with httpx.Client(timeout=timeout_s, follow_redirects=False, auth=auth) as http:
            for what, url in (
                ("ping", f"{onec.base_url.rstrip('/')}/ping"),
                ("$metadata", f"{odata.rstrip('/')}/$metadata"),
            ):
                status, detail = judge(http.get(url).status_code)
                verdicts.append((_SEVERITY[status], status, f"{what}: {detail}"))
        worst = max(verdicts)
        return worst[1], "; ".join(v[2] for v in verdicts)

    return _timed("onec", mask_url(onec.base_url), probe)


def check_registry(settings: Settings, timeout_s: float) -> Check:
    """The schema registry answers its subjects list."""
    if not settings.schema_registry_url:
        return Check("schema-registry", NA, "not configured (SCHEMA_REGISTRY_URL)")

    base = settings.schema_registry_url.rstrip("/")

    def probe() -> tuple[str, str]:
        # Through the workers' own client: the same auth and TLS settings, so a registry that
        # would refuse the workers (credentials, untrusted certificate) is "down" here too.
        conf = {**settings.registry_client_config(), "timeout": timeout_s, "max.retries": 0}
        try:
            subjects = registry_client(conf).get_subjects()
        except Exception as exc:  # noqa: BLE001 — mapped to the project's errors for the detail
            raise registry_error(exc, "listing subjects") from exc
        return OK, f"{len(subjects)} subjects"

    return _timed("schema-registry", mask_url(base), probe)


def check_circuits(settings: Settings, urls: list[str], timeout_s: float) -> list[Check]:
    """One check per target circuit found on the egress workers' /metrics.

    Explicitly configured URLs that do not answer are "down"; the embedded default that does
    not answer means no egress worker runs here ("n/a").
    """
    explicit = bool(urls)
    urls = urls or [f"http://127.0.0.1:{settings.embedded.egress_metrics_port}/metrics"]
    states: dict[str, int] = {}
    out: list[Check] = []
    for url in urls:
        try:
            body = httpx.get(url, timeout=timeout_s).text
        except httpx.HTTPError as exc:
            if explicit:
                out.append(
                    Check("circuits", DOWN, f"egress metrics unreachable: {exc}", mask_url(url))
                )
            continue
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == "mm_egress_circuit_state":
                    target = sample.labels.get("target", "?")
                    states[target] = max(states.get(target, 0), int(sample.value))
    for target, value in sorted(states.items()):
        status, detail = _CIRCUIT.get(value, (DEGRADED, f"unknown state {value}"))
        out.append(Check(f"circuit:{target}", status, detail))
    if not out:
        out.append(
            Check(
                "circuits",
                NA,
                "no egress worker metrics reachable" if not explicit else "no circuits reported",
            )
        )
    return out


#: The checks, by the name ``mmctl health --check`` takes.
CHECKS = ("broker", "database", "schema-registry", "bitrix24", "onec", "circuits")


def run_checks(
    settings: Settings,
    timeout_s: float = 5.0,
    metrics_urls: list[str] | None = None,
    names: list[str] | tuple[str, ...] | None = None,
) -> list[Check]:
    """Every check (or those ``names``), in parallel; the report in a fixed order."""
    every: dict[str, Callable[[], Check | list[Check]]] = {
        "broker": lambda: check_broker(settings, timeout_s),
        "database": lambda: check_database(settings, timeout_s),
        "schema-registry": lambda: check_registry(settings, timeout_s),
        "bitrix24": lambda: check_bitrix24(settings, timeout_s),
        "onec": lambda: check_onec(settings, timeout_s),
        "circuits": lambda: check_circuits(
            settings, list(metrics_urls or settings.ops.circuit_metrics_urls), timeout_s
        ),
    }
    unknown = set(names or ()) - set(every)
    if unknown:
        raise ValueError(f"unknown check(s) {sorted(unknown)}: choose from {list(every)}")
    jobs = [job for name, job in every.items() if not names or name in names]
    # Every module a check needs is imported at the top: imports inside the threads
    # deadlocked now and then (two threads importing sqlalchemy at once).
    with ThreadPoolExecutor(max_workers=len(jobs)) as executor:
        results = [f.result() for f in [executor.submit(job) for job in jobs]]
    return [c for r in results for c in (r if isinstance(r, list) else [r])]
