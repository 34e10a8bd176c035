"""The integration log and retention on the real PostgreSQL, with the real emulators (in
process, over ASGI): trace headers reach the targets, every attempt is logged masked, the
purge keeps what is young and removes what is old, and the timeline is read back."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from sqlalchemy import text

from connectors.bitrix24.client import Bitrix24Client
from connectors.ingress.purge import purge_once
from connectors.onec.client import OneCClient
from devstack.emulators.bitrix24 import create_app as bitrix24_app
from devstack.emulators.onec.app import create_app as onec_app
from mmstream import log as logctx
from mmstream.db.engine import async_engine
from mmstream.settings import Bitrix24Settings, OneCSettings
from mmstream.trace import journal as journals
from mmstream.trace.context import trace_id_of, traceparent
from mmstream.trace.timeline import collect

HOOK = "/rest/1/s3cr3t-hook-code/"


def _run(settings, scenario):
    """Run ``scenario(engine, journal)`` with this test's database as the integration log."""

    async def main():
        engine = async_engine(settings, pool_size=2)
        journal = journals.Journal.from_settings(engine, settings.retention)
        journals.install(journal)
        try:
            return await scenario(engine, journal)
        finally:
            await journal.aclose()
            await engine.dispose()

    return asyncio.run(main())


async def _log_rows(engine, where: str = "true", **params) -> list[dict]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(f"SELECT * FROM integration_log WHERE {where} ORDER BY id"), params
        )
        return [dict(r) for r in result.mappings().all()]


def test_bitrix24_calls_carry_the_ids_and_are_logged_masked(settings):
    app = bitrix24_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)
    event, request_id = str(uuid.uuid4()), uuid.uuid4().hex

    async def scenario(engine, journal):
        client = Bitrix24Client(
            Bitrix24Settings(webhook_url="http://portal.test" + HOOK, rate_per_s=1e6, burst=1000),
            transport=httpx.ASGITransport(app=app),
        )
        try:
            with logctx.bind(event_id=event, request_id=request_id):
                await client.call(
                    "crm.deal.add", {"fields": {"TITLE": "Заказ"}, "auth": "not-logged"}
                )
        finally:
            await client.aclose()
        await journal.flush()
        return await _log_rows(engine)

    rows = _run(settings, scenario)
    calls = asyncio.run(_emulator_calls(app))
    assert [(c["method"], c["request_id"], c["traceparent"]) for c in calls] == [
        ("crm.deal.add", request_id, traceparent(event, request_id))
    ]
    [row] = rows
    assert (
        row["target"] == "bitrix24" and row["operation"] == "crm.deal.add" and row["status"] == 200
    )
    assert (row["event_id"], row["request_id"]) == (event, request_id)
    assert row["traceparent"].split("-")[1] == trace_id_of(event)
    assert "s3cr3t-hook-code" not in row["url"] and "/rest/1/***/" in row["url"]
    assert '"TITLE": "Заказ"' in row["request"] and "not-logged" not in row["request"]
    assert '"result"' in row["response"] and row["latency_ms"] > 0


async def _emulator_calls(app) -> list[dict]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://portal.test"
    ) as admin:
        return (await admin.get("/_emulator/calls")).json()


def test_a_packed_batch_carries_every_change_and_logs_each_command(settings):
    app = bitrix24_app(webhook_path=HOOK, rate_per_s=1000.0, burst=1000)
    changes = [(str(uuid.uuid4()), uuid.uuid4().hex) for _ in range(2)]

    async def scenario(engine, journal):
        client = Bitrix24Client(
            Bitrix24Settings(
                webhook_url="http://portal.test" + HOOK,
                rate_per_s=1e6,
                burst=1000,
                pack_linger_s=0.05,
            ),
            transport=httpx.ASGITransport(app=app),
            pack=True,
        )

        async def one(event, request_id, title):
            with logctx.bind(event_id=event, request_id=request_id):
                return await client.call("crm.deal.add", {"fields": {"TITLE": title}})

        try:
            await asyncio.gather(*(one(e, r, f"deal {i}") for i, (e, r) in enumerate(changes)))
        finally:
            await client.aclose()
        await journal.flush()
        return await _log_rows(engine)

    rows = _run(settings, scenario)
    calls = asyncio.run(_emulator_calls(app))
    batch = [c for c in calls if c["method"] == "batch"]
    assert len(batch) == 1, calls
    # The one HTTP request names both changes (not the one whose task started the packer).
    assert sorted(batch[0]["request_id"].split(",")) == sorted(r for _, r in changes)
    commands = [r for r in rows if r["http_method"] == "BATCH"]
    assert sorted((r["event_id"], r["request_id"], r["status"]) for r in commands) == sorted(
        (e, r, 200) for e, r in changes
    )
    assert all(r["traceparent"] == traceparent(r["event_id"], r["request_id"]) for r in commands)
    [http] = [r for r in rows if r["operation"] == "batch"]
    assert sorted(http["request_id"].split(",")) == sorted(r for _, r in changes)


def test_onec_calls_carry_the_ids_and_failures_without_an_answer_are_logged(settings):
    app = onec_app(service_username="u", service_password="p-secret")
    event, request_id = str(uuid.uuid4()), uuid.uuid4().hex
    missing = str(uuid.uuid4())

    async def scenario(engine, journal):
        onec = OneCClient(
            OneCSettings(
                base_url="http://onec.test/trade/hs/mm/", username="u", password="p-secret"
            ),
            transport=httpx.ASGITransport(app=app),
        )
        # Nothing listens on port 9 (discard): the call gets no answer.
        dead = OneCClient(
            OneCSettings(base_url="http://127.0.0.1:9/trade/hs/mm/", connect_timeout_s=1.0)
        )
        try:
            with logctx.bind(event_id=event, request_id=request_id):
                assert await onec.get_document("Document_ЗаказКлиента", missing) is None
                try:
                    await dead.ping()
                except Exception as exc:  # noqa: BLE001 — the failure itself is not the point
                    assert "no answer" in str(exc)
        finally:
            await onec.aclose()
            await dead.aclose()
        await journal.flush()
        return await _log_rows(engine)

    rows = _run(settings, scenario)
    served = [c for c in app.state.calls.list() if c["interface"] == "odata"]
    assert [(c["request_id"], c["traceparent"]) for c in served] == [
        (request_id, traceparent(event, request_id))
    ]
    got, failed = rows
    assert got["target"] == "onec" and got["status"] == 404 and got["event_id"] == event
    assert got["operation"].startswith(f"Document_ЗаказКлиента(guid'{missing}')")
    assert "p-secret" not in str(got)
    assert (
        failed["status"] is None
        and failed["error"] == "ConnectError"
        and failed["operation"] == "ping"
    )


def test_the_journal_drops_rather_than_blocks_when_full(settings):
    async def scenario(engine, _):
        small = journals.Journal(engine, capacity=2, batch=10)
        entry = journals.Entry(
            target="bitrix24", operation="x", http_method="POST", url="u", latency_ms=1.0
        )
        accepted = [small.offer(entry) for _ in range(5)]  # the writer has not run yet
        await small.aclose()
        return accepted, await _log_rows(engine)

    accepted, rows = _run(settings, scenario)
    assert accepted == [True, True, False, False, False] and len(rows) == 2


def test_purge_removes_only_expired_rows_of_every_table(settings):
    keep = settings.retention
    rows = 3000

    async def scenario(engine, _):
        async with engine.begin() as conn:
            # integration_log: `rows` old rows and 2 young ones (one just inside the window).
            await conn.execute(
                text(
                    "INSERT INTO integration_log (at, target, operation, http_method, url, latency_ms) "
                    "SELECT now() - make_interval(days => :d) - make_interval(secs => g), 'bitrix24', 'x', 'POST', "
                    "'u', 1 FROM generate_series(1, :n) g"
                ),
                {"d": keep.integration_log_days, "n": rows},
            )
            await conn.execute(
                text(
                    "INSERT INTO integration_log (at, target, operation, http_method, url, latency_ms) VALUES "
                    "(now(), 'bitrix24', 'young', 'POST', 'u', 1), "
                    "(now() - make_interval(days => :d) + interval '1 hour', 'bitrix24', 'edge', 'POST', 'u', 1)"
                ),
                {"d": keep.integration_log_days},
            )
            # outbox: old published (purged), old unpublished (kept: still owed), young published.
            for n, (age, published) in enumerate(
                [(keep.outbox_days + 1, True), (keep.outbox_days + 1, False), (0, True)]
            ):
                await conn.execute(
                    text(
                        "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, "
                        "source_partition, source_offset, payload, created_at, published_at) VALUES "
                        "(:e, 'product', :id, 'upsert', '1', 't', 0, :n, '{}', now() - make_interval(days => :age), "
                        "CASE WHEN :pub THEN now() - make_interval(days => :age) END)"
                    ),
                    {"e": str(uuid.uuid4()), "id": f"p{n}", "n": n, "age": age, "pub": published},
                )
            await conn.execute(
                text(
                    "INSERT INTO ops_audit (at, actor, action, target) VALUES "
                    "(now() - make_interval(days => :d), 'old', 'dlq.replay', 't'), (now(), 'new', 'dlq.replay', 't')"
                ),
                {"d": keep.ops_audit_days + 1},
            )
        started = time.perf_counter()
        done = await purge_once(engine, settings, budget_s=60)
        seconds = time.perf_counter() - started
        async with engine.connect() as conn:
            left = {
                "log": sorted(
                    r[0] for r in await conn.execute(text("SELECT operation FROM integration_log"))
                ),
                "outbox": sorted(
                    r[0] for r in await conn.execute(text("SELECT entity_id FROM outbox"))
                ),
                "audit": [r[0] for r in await conn.execute(text("SELECT actor FROM ops_audit"))],
            }
        return done, left, seconds

    done, left, seconds = _run(settings, scenario)
    assert (done.integration_log, done.outbox, done.ops_audit) == (rows, 1, 1)
    assert left == {"log": ["edge", "young"], "outbox": ["p1", "p2"], "audit": ["new"]}
    print(f"\npurged {rows} integration log rows in {seconds:.3f}s: {rows / seconds:.0f} rows/s")


def test_the_timeline_is_found_from_any_id(settings):
    entity, event, request_id = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex

    async def scenario(engine, journal):
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO crosswalk (system, entity, canonical_id, external_id) "
                    "VALUES ('bitrix24', 'product', :id, '4242')"
                ),
                {"id": entity},
            )
            await conn.execute(
                text(
                    "INSERT INTO source_version (entity, source_id, version) VALUES "
                    "('product', :id, 'v1'), ('product', :id, 'v0')"
                ),
                {"id": entity},
            )
            await conn.execute(
                text(
                    "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, source_partition, "
                    "source_offset, payload, headers, published_at) VALUES (:e, 'product', :id, 'upsert', 'v1', 't', 0, "
                    "1, '{}', CAST(:h AS jsonb), now())"
                ),
                {
                    "e": event,
                    "id": entity,
                    "h": f'{{"x-request-id": "{request_id}", "ce_id": "{event}"}}',
                },
            )
        journal.offer(
            journals.Entry(
                target="bitrix24",
                operation="catalog.product.add",
                http_method="POST",
                url="u",
                latency_ms=3.0,
                status=200,
                event_id=event,
                request_id=request_id,
            )
        )
        await journal.flush()
        return [
            (await collect(engine, ident)).as_dict()
            for ident in (entity, "4242", event, request_id)
        ]

    by_entity, by_bitrix, by_event, by_request = _run(settings, scenario)
    for timeline in (by_entity, by_bitrix, by_event, by_request):
        assert timeline["entity_ids"] == [entity], timeline["query"]
        assert timeline["event_ids"] == [event] and timeline["request_ids"] == [request_id]
        kinds = sorted(s["kind"] for s in timeline["steps"])
        assert kinds == ["egress", "outbox", "version", "version"], timeline
        merged = {
            s["details"]["version"]: s["details"]["merged"]
            for s in timeline["steps"]
            if s["kind"] == "version"
        }
        assert merged == {"v1": True, "v0": False}
    assert (asyncio.run(_nothing(settings)))["steps"] == []


async def _nothing(settings):
    engine = async_engine(settings, pool_size=1)
    try:
        return (await collect(engine, "no-such-id")).as_dict()
    finally:
        await engine.dispose()


def test_the_migration_goes_down_and_up_again(db_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from mmstream.db.migrate import upgrade
    from mmstream.settings import REPO_ROOT

    cfg = Config()
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["url"] = db_url
    command.downgrade(cfg, "0024")
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('integration_log')")).scalar() is None
        upgrade(db_url)
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT to_regclass('integration_log')")).scalar()
                == "integration_log"
            )
    finally:
        engine.dispose()
