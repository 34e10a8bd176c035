"""Abuse and partial-outage hardening of the bridge, on the real broker and PostgreSQL:
records too large for Kafka (413, not an endless 503), deep JSON and huge forms (4xx, not
500), rate-limit buckets that junk cannot drain for verified callers, no database connection
held while the broker is awaited, bounded database waits, and a purge that keeps up."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import event, text

from connectors.ingress.app import create_app
from connectors.ingress.database import bridge_engine
from connectors.ingress.purge import purge_once
from connectors.onec import exchange
from mmstream.kafka.admin import apply
from mmstream.kafka.producer import AckedProducer
from mmstream.topics import load_catalog
from tests.support.bitrix24 import event_body, with_tokens
from tests.support.stack import onec_product
from tests.support.topics import count_records

URL = "/v1/onec/products"
EVENTS = "/v1/bitrix24/events"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _libpq(settings) -> str:
    return settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _code(resp) -> str:
    return resp.json()["error"]["code"]


# -- 1. a record too large for Kafka ------------------------------------------------------


def test_a_record_too_large_for_kafka_is_413_not_a_503_forever(bridge, bridge_settings, token):
    huge = onec_product(Комментарий="я" * 600_000)  # 1.2 MB of UTF-8: over Kafka's 1 MB
    resp = bridge.post(URL, json=huge, headers=_auth(token))
    assert resp.status_code == 413, resp.text
    assert _code(resp) == "record_too_large" and "retry-after" not in resp.headers
    small = onec_product()
    batch = bridge.post(f"{URL}/batch", json=[small, huge], headers=_auth(token))
    assert batch.status_code == 207, batch.text
    results = batch.json()["results"]
    assert results[0]["status"] == "accepted"
    assert results[1]["status"] == "rejected" and results[1]["error"]["code"] == "record_too_large"
    keys = [
        r.key().decode() for r in count_records(bridge_settings, "raw.onec.product", 1, quiet_s=0)
    ]
    assert keys == [small["Ref_Key"]]


def test_the_producers_own_size_refusal_is_413_too(bridge_settings, token):
    """With the bridge's size check set above the producer's limit, librdkafka refuses the
    record itself (MSG_SIZE_TOO_LARGE): still a definite 413, never 503 + Retry-After."""
    settings = bridge_settings.model_copy(
        update={
            "ingress": bridge_settings.ingress.model_copy(update={"max_record_bytes": 5_000_000})
        }
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        resp = client.post(URL, json=onec_product(Комментарий="я" * 600_000), headers=_auth(token))
    assert resp.status_code == 413, resp.text
    assert _code(resp) == "record_too_large"


# -- 5. deep JSON, huge forms ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 65])
def test_deeply_nested_json_is_refused_with_a_code(bridge, bridge_settings, token, depth):
    body = ("[" * depth + "]" * depth).encode()
    for url in (URL, f"{URL}/batch"):
        resp = bridge.post(
            url, content=body, headers={**_auth(token), "Content-Type": "application/json"}
        )
        assert resp.status_code == 400, resp.text
        assert _code(resp) == "json_too_deep"
    nested = onec_product(Описание={"a": {"b": {"c": "fine"}}})  # ordinary depth still passes on
    assert bridge.post(URL, json=nested, headers=_auth(token)).status_code in (202, 422)


def test_an_integer_too_long_to_convert_is_invalid_json(bridge, token):
    # json.loads raises a plain ValueError (not JSONDecodeError) past 4,300 digits.
    body = b'{"Ref_Key": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09", "Code": ' + b"9" * 5000 + b"}"
    for url in (URL, f"{URL}/batch"):
        resp = bridge.post(
            url, content=body, headers={**_auth(token), "Content-Type": "application/json"}
        )
        assert resp.status_code == 400, resp.text
        assert _code(resp) == "invalid_json"


@pytest.fixture
def portal_settings(settings):
    s = with_tokens(settings, event_dedupe_window_s=0.0)
    s = s.model_copy(
        update={
            "ingress": s.ingress.model_copy(
                update={
                    "client_rate_per_s": 0.01,
                    "client_burst": 5,
                    "unverified_rate_per_s": 0.01,
                    "unverified_burst": 3,
                }
            ),
            "commerceml": s.commerceml.model_copy(
                update={"password": SecretStr("cml-test-password")}
            ),
        }
    )
    apply(s, load_catalog(s.topics_file))
    return s


@pytest.fixture
def portal_bridge(portal_settings):
    with TestClient(create_app(portal_settings), raise_server_exceptions=False) as client:
        yield client


def test_huge_forms_are_refused_413(bridge, bridge_settings):
    many = "&".join(f"data[FIELDS][F{n}]=x" for n in range(5000)).encode()
    deep = ("data" + "[a]" * 2000 + "=x").encode()
    long_key = ("data[" + "k" * 5000 + "]=x").encode()
    for body in (many, deep, long_key):
        resp = bridge.post(EVENTS, content=body, headers=FORM)
        assert resp.status_code == 413, resp.text
        assert _code(resp) in ("form_too_large", "body_too_large")
    big = ("event=ONCRMDEALUPDATE&data[FIELDS][ID]=1&x=" + "a" * 200_000).encode()
    resp = bridge.post(EVENTS, content=big, headers=FORM)
    assert resp.status_code == 413 and _code(resp) == "body_too_large", resp.text
    assert count_records(bridge_settings, "raw.bitrix24.event", quiet_s=0.5) == []


# -- 2. rate-limit buckets ----------------------------------------------------------------


def test_forged_events_from_one_address_do_not_starve_a_verified_portal(
    portal_bridge, portal_settings
):
    """Behind a load balancer junk and Bitrix24 share an address; Bitrix24 never re-sends."""
    forged = [
        portal_bridge.post(
            EVENTS, content=event_body("ONCRMDEALUPDATE", n, token="forged"), headers=FORM
        )
        for n in range(1, 21)
    ]
    statuses = [r.status_code for r in forged]
    assert statuses[:3] == [401] * 3 and set(statuses[3:]) == {429}, statuses
    junk = [portal_bridge.post(EVENTS, content=b"hello", headers=FORM) for _ in range(5)]
    assert {r.status_code for r in junk} == {429}
    real = [
        portal_bridge.post(EVENTS, content=event_body("ONCRMDEALUPDATE", n), headers=FORM)
        for n in (101, 102)
    ]
    assert [r.status_code for r in real] == [200, 200], [r.text for r in real]
    # The portal has its own budget (burst 5), and it is enforced.
    more = [
        portal_bridge.post(EVENTS, content=event_body("ONCRMDEALUPDATE", n), headers=FORM)
        for n in range(103, 110)
    ]
    assert [r.status_code for r in more].count(429) == 4
    keys = sorted(
        r.key().decode() for r in count_records(portal_settings, "raw.bitrix24.event", 5, quiet_s=0)
    )
    assert keys == sorted(f"deal:{n}" for n in range(101, 106))


def test_unauthenticated_junk_does_not_starve_a_commerceml_user(portal_bridge, portal_settings):
    for _ in range(10):
        assert portal_bridge.get(
            "/1c_exchange", params={"type": "catalog", "mode": "init"}
        ).status_code in (401, 429)
        portal_bridge.post(URL, json={})  # no credentials: the address's unverified bucket
    cml = portal_settings.commerceml
    basic = base64.b64encode(f"{cml.username}:{cml.password.get_secret_value()}".encode()).decode()
    resp = portal_bridge.get(
        "/1c_exchange",
        params={"type": "catalog", "mode": "checkauth"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status_code == 200 and resp.text.startswith("success"), resp.text


# -- 3. database connections and timeouts ---------------------------------------------------


class WatchedProducer(AckedProducer):
    """The real producer, noting how many database connections the producing request (its
    asyncio task) holds while its produce is awaited; each produce stalls ``stall_s`` first,
    as a slow broker would."""

    def __init__(self, *args, stall_s: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stall_s = stall_s
        self.held_by: dict[int, asyncio.Task | None] = {}
        self.held_while_producing: list[int] = []

    def watch(self, engine) -> None:
        pool = engine.sync_engine.pool

        def checkout(_dbapi, record, _proxy) -> None:
            self.held_by[id(record)] = asyncio.current_task()

        def checkin(_dbapi, record) -> None:
            self.held_by.pop(id(record), None)

        event.listen(pool, "checkout", checkout)
        event.listen(pool, "checkin", checkin)

    def _mine(self) -> int:
        task = asyncio.current_task()
        return sum(1 for t in self.held_by.values() if t is task)

    async def send_many(self, records):
        self.held_while_producing.append(self._mine())
        await asyncio.sleep(self.stall_s)
        delivered = await super().send_many(records)
        self.held_while_producing.append(self._mine())
        return delivered


def test_no_database_connection_is_held_while_the_broker_is_awaited(bridge_settings, token):
    """1С pushes (numbered messages, Idempotency-Keys) hold no connection while producing; the
    Bitrix24 event dedupe, which must, holds its own pool's, never the one 1С needs."""
    settings = with_tokens(bridge_settings, event_dedupe_window_s=30.0)
    producer = WatchedProducer(settings.kafka, client_id="watched", stall_s=1.0)
    app = create_app(settings, producer=producer)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            producer.watch(app.state.engine)
            # A stalled broker and more concurrent numbered messages than the pool holds (10).
            answers = []

            def send(n: int) -> None:
                answers.append(
                    client.post(
                        f"{URL}/batch",
                        json=[onec_product()],
                        headers={
                            **_auth(token),
                            exchange.NODE_HEADER: "CB",
                            exchange.NUMBER_HEADER: str(n),
                        },
                    )
                )

            def event(n: int) -> None:
                answers.append(
                    client.post(EVENTS, content=event_body("ONCRMDEALUPDATE", n), headers=FORM)
                )

            threads = [threading.Thread(target=send, args=(n,)) for n in range(1, 16)]
            threads += [threading.Thread(target=event, args=(n,)) for n in range(1, 6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            keyed = client.post(
                URL,
                json=onec_product(),
                headers={**_auth(token), "Idempotency-Key": str(uuid.uuid4())},
            )
    finally:
        producer.close()
    assert sorted(a.status_code for a in answers) == [200] * 20, [a.text for a in answers]
    assert keyed.status_code == 202, keyed.text
    held = producer.held_while_producing
    assert len(held) == 42 and max(held) == 0, held


def test_bridge_connections_have_connect_and_statement_timeouts(bridge_settings):
    app = create_app(bridge_settings)

    async def probe() -> str:
        async with app.state.engine.connect() as conn:
            return (await conn.execute(text("SHOW statement_timeout"))).scalar_one()

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal.call(probe) == "10s"
    settings = bridge_settings.model_copy(
        update={
            "database_url": SecretStr("postgresql+psycopg://nobody@10.255.255.1:5432/none"),
            "ingress": bridge_settings.ingress.model_copy(update={"db_connect_timeout_s": 1}),
        }
    )

    async def unreachable() -> float:
        engine = bridge_engine(settings)
        started = time.monotonic()
        try:
            async with engine.connect():
                pass
        except Exception:  # noqa: BLE001 — any connection error; the point is how long it took
            return time.monotonic() - started
        finally:
            await engine.dispose()
        raise AssertionError("connected to an unroutable address")

    assert asyncio.run(unreachable()) < 10


# -- 4. purge ------------------------------------------------------------------------------


def test_purge_keeps_up_and_exchange_numbers_expire(bridge_settings, capsys):
    n_keys, n_msgs = 60_000, 20_000
    with psycopg.connect(_libpq(bridge_settings), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ingress_idempotency (principal, path, key, fingerprint, claim, "
            "status, lease_until, expires_at) SELECT 'p', '/x', 'k' || g, '\\x00', "
            "gen_random_uuid(), 202, now(), now() - interval '1 second' "
            "FROM generate_series(1, %s) g",
            (n_keys,),
        )
        conn.execute(
            "INSERT INTO ingress_idempotency (principal, path, key, fingerprint, claim, "
            "status, lease_until, expires_at) VALUES ('p', '/x', 'fresh', '\\x00', "
            "gen_random_uuid(), 202, now(), now() + interval '1 day')"
        )
        conn.execute(
            "INSERT INTO onec_exchange_message (principal, node, message_no, object, "
            "body_sha256, response, received_at) SELECT 'p', 'ЦБ', g, 'Склады', 'x', "
            "'{}', now() - interval '31 days' FROM generate_series(1, %s) g",
            (n_msgs,),
        )
        conn.execute(
            "INSERT INTO onec_exchange_message (principal, node, message_no, object, "
            "body_sha256, response) VALUES ('p', 'ЦБ', 0, 'Склады', 'x', '{}')"
        )
        # Abandoned CommerceML sessions with an upload go too; a live one stays.
        conn.execute(
            "INSERT INTO commerceml_session (cookie_hash, principal, expires_at) "
            "SELECT sha256(g::text::bytea), 'site', now() - interval '1 minute' "
            "FROM generate_series(1, 300) g"
        )
        conn.execute(
            "INSERT INTO commerceml_session (cookie_hash, principal, expires_at) "
            "VALUES ('\\x01', 'site', now() + interval '1 hour')"
        )
        conn.execute(
            "INSERT INTO commerceml_file (session_id, filename, size) "
            "SELECT id, 'import.xml', 1 FROM commerceml_session"
        )

    async def run():
        engine = bridge_engine(bridge_settings)
        try:
            return await purge_once(engine, bridge_settings, budget_s=120)
        finally:
            await engine.dispose()

    done = asyncio.run(run())
    assert (done.keys, done.messages, done.sessions) == (n_keys, n_msgs, 300)
    with psycopg.connect(_libpq(bridge_settings)) as conn:
        assert conn.execute("SELECT key FROM ingress_idempotency").fetchall() == [("fresh",)]
        assert conn.execute("SELECT message_no FROM onec_exchange_message").fetchall() == [(0,)]
        assert conn.execute("SELECT count(*) FROM commerceml_file").fetchone() == (1,)
    with capsys.disabled():
        print(
            f"\npurge: {n_keys + n_msgs} rows in {done.seconds:.2f} s = "
            f"{(n_keys + n_msgs) / done.seconds:,.0f} rows/s"
        )


def test_purge_job_runs_in_the_bridge(bridge_settings, token):
    settings = bridge_settings.model_copy(
        update={"ingress": bridge_settings.ingress.model_copy(update={"purge_interval_s": 0.5})}
    )
    with psycopg.connect(_libpq(settings), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO onec_exchange_message (principal, node, message_no, object, "
            "body_sha256, response, received_at) VALUES ('p', 'ЦБ', 1, 'Склады', 'x', "
            "'{}', now() - interval '31 days')"
        )
    with TestClient(create_app(settings), raise_server_exceptions=False):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with psycopg.connect(_libpq(settings)) as conn:
                if conn.execute("SELECT count(*) FROM onec_exchange_message").fetchone() == (0,):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the old exchange message number was not purged")


def test_a_client_leaving_mid_body_is_not_a_server_error(bridge_settings, token, caplog):
    app = create_app(bridge_settings)
    sent: list[dict] = []

    async def call() -> None:
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "path": URL,
            "raw_path": URL.encode(),
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "headers": [
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", b"1000"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        parts = [
            {"type": "http.request", "body": b'{"Ref_Key": "', "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> dict:
            return parts.pop(0) if parts else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)

    with TestClient(app, raise_server_exceptions=False) as client:
        client.portal.call(call)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == []
    assert "unhandled error" not in caplog.text
