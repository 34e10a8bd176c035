"""Install callbacks and the one-portal rule at the bridge, through the real bridge, broker,
PostgreSQL and the Bitrix24 emulator's token endpoint over HTTP: an OAuth authorization-code
redirect and ONAPPINSTALL store the application's tokens (OAuth mode), a webhook deployment
answers `install_not_expected`, another portal or a forged token is refused with its own
code, scanner probes keep their old answer, and none of it reaches a raw topic."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.ingress.app import create_app
from devstack.emulators.bitrix24.oauth import MEMBER_ID as EMU_MEMBER
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from tests.connectors.bitrix24.conftest import serve_emulator
from tests.support.bitrix24 import (
    APP_TOKEN,
    DOMAIN,
    MEMBER_ID,
    event_body,
    event_doc,
    install_body,
    php_form,
)

URL = "/v1/bitrix24/events"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CLIENT_ID = "local.mmstream.emulator"
CLIENT_SECRET = "dev-only-oauth-secret"  # noqa: S105 — the emulator's own


@pytest.fixture
def portal():
    """The emulated portal over real HTTP: (base URL, its OAuth server)."""
    with serve_emulator(webhook_path="/rest/1/testhook/", rate_per_s=1000.0, burst=1000) as (
        base,
        app,
    ):
        yield base, app.state.oauth


def oauth_settings(settings: Settings, base: str, member: str) -> Settings:
    bx = settings.bitrix24.model_copy(
        update={
            "auth_mode": "oauth",
            "application_tokens": {member: SecretStr(APP_TOKEN)},
            "oauth": settings.bitrix24.oauth.model_copy(
                update={
                    "client_id": CLIENT_ID,
                    "client_secret": SecretStr(CLIENT_SECRET),
                    "portal": base,
                    "token_url": f"{base}/oauth/token/",
                }
            ),
        }
    )
    made = settings.model_copy(update={"bitrix24": bx})
    apply(made, load_catalog(made.topics_file))
    return made


def stored(db_url: str) -> list[tuple]:
    async def read():
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                return [
                    tuple(r)
                    for r in (
                        await conn.execute(
                            text(
                                "SELECT portal, access_token, refresh_token, member_id "
                                "FROM bitrix24_oauth_token ORDER BY portal"
                            )
                        )
                    ).all()
                ]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def raw_records(settings: Settings) -> dict[str, int]:
    """Records on every raw topic of the catalog, read by one consumer from offset 0 until
    the one control event was seen and then 1.5 s of silence."""
    catalog = load_catalog(settings.topics_file).topics
    names = {settings.topic(n): n for n in catalog if n.startswith("raw.")}
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [TopicPartition(t, p, 0) for t, n in names.items() for p in range(catalog[n].partitions)]
    )
    counts = dict.fromkeys(names.values(), 0)
    quiet_until, deadline = time.monotonic() + 1.5, time.monotonic() + 30
    try:
        while time.monotonic() < deadline and (
            time.monotonic() < quiet_until or counts["raw.bitrix24.event"] == 0
        ):
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                counts[names[msg.topic()]] += 1
                quiet_until = time.monotonic() + 1.5
    finally:
        consumer.close()
    return counts


def control(bridge: TestClient, member: str) -> None:
    """A real event of the served portal, published: the topic check can see records."""
    resp = bridge.post(URL, content=event_body("ONCRMDEALADD", 5, member_id=member), headers=FORM)
    assert resp.status_code == 200, resp.text


def only_the_control(settings: Settings) -> bool:
    counts = raw_records(settings)
    return counts.pop("raw.bitrix24.event") == 1 and set(counts.values()) <= {0}


def check(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code, resp.text
    return resp.json()["error"]


def redirect(code: str, member: str = EMU_MEMBER) -> dict:
    return {
        "code": code,
        "state": "s1",
        "domain": DOMAIN,
        "member_id": member,
        "scope": "crm,task",
        "server_domain": "oauth.bitrix.info",
    }


def test_a_second_portal_is_refused_at_load_in_one_line():
    tokens = {"m1": "a" * 44, "m2": "b" * 44}
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, bitrix24={"application_tokens": tokens})
    (error,) = err.value.errors()
    assert error["loc"] == ("bitrix24", "application_tokens")
    assert error["msg"].startswith(
        "this deployment serves one Bitrix24 portal, but 2 are configured (m1, m2)"
    )
    Settings(_env_file=None, bitrix24={"application_tokens": {"m1": "a" * 44}})  # one is fine

    env = {**os.environ, "MM_BITRIX24__APPLICATION_TOKENS": json.dumps(tokens)}
    done = subprocess.run(
        [sys.executable, "-c", "from mmstream.cli.main import cli; cli()", "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "a" * 44 not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "mmctl: invalid settings: bitrix24.application_tokens: this deployment serves one "
        "Bitrix24 portal, but 2 are configured (m1, m2); enrichment, polling and egress reach "
        "one portal, so run one deployment per portal"
    ]


def test_oauth_code_redirect_stores_the_pair_the_token_endpoint_issued(settings, portal, db_url):
    base, oauth = portal
    s = oauth_settings(settings, base, EMU_MEMBER)
    host = base.removeprefix("http://")
    with TestClient(create_app(s), raise_server_exceptions=False) as bridge:
        # Another portal's redirect: refused before its code is spent.
        other = oauth.authorize()
        error = check(
            bridge.get(URL, params=redirect(other, member="f" * 32)), 403, "unknown_portal"
        )
        assert EMU_MEMBER in error["message"]
        assert stored(db_url) == []

        # The served portal's redirect (GET, as the browser follows it).
        resp = bridge.get(URL, params=redirect(oauth.authorize()))
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "installed" and resp.json()["member_id"] == EMU_MEMBER
        ((key, access, refresh, member),) = stored(db_url)
        assert (key, member) == (host, EMU_MEMBER)
        assert oauth.check(access) is None  # a live token of the emulated portal
        assert oauth.stats()["live_refresh_tokens"] == 1 and refresh

        # A spent code is refused by the token endpoint: the stored pair stays.
        spent = redirect(other)
        assert bridge.get(URL, params=spent).status_code == 200  # `other` was never spent
        check(bridge.get(URL, params=spent), 400, "bad_request")
        # The form POST variant of the redirect is answered the same way.
        resp = bridge.post(URL, content=php_form(redirect(oauth.authorize())), headers=FORM)
        assert resp.status_code == 200, resp.text
        ((_, latest, _, _),) = stored(db_url)
        assert latest != access and oauth.check(latest) is None

        control(bridge, EMU_MEMBER)
    assert only_the_control(s)


def test_onappinstall_stores_its_tokens_only_for_the_served_portal(settings, portal, db_url):
    base, _ = portal
    s = oauth_settings(settings, base, MEMBER_ID)
    with TestClient(create_app(s), raise_server_exceptions=False) as bridge:
        forged = php_form_install(token=APP_TOKEN[:-1] + "0")
        check(bridge.post(URL, content=forged, headers=FORM), 401, "invalid_application_token")
        error = check(
            bridge.post(URL, content=php_form_install(member="0" * 32), headers=FORM),
            403,
            "unknown_portal",
        )
        assert error["message"] == (
            f"this deployment serves one Bitrix24 portal (member_id "
            f"{MEMBER_ID}); run one deployment per portal"
        )
        assert stored(db_url) == []

        resp = bridge.post(URL, content=install_body(), headers=FORM)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "installed"
        assert stored(db_url) == [
            (
                base.removeprefix("http://"),
                "s6p6eclrvim6da22ft9ch94ekreb52lv",
                "4s386p3q0tr8dy89xvmt96234v3dljg8",
                MEMBER_ID,
            )
        ]
        control(bridge, MEMBER_ID)
    assert only_the_control(s)


def test_a_webhook_deployment_does_not_expect_installs(settings, portal):
    base, oauth = portal
    s = settings.model_copy(
        update={
            "bitrix24": settings.bitrix24.model_copy(
                update={"application_tokens": {MEMBER_ID: SecretStr(APP_TOKEN)}}
            )
        }
    )
    apply(s, load_catalog(s.topics_file))
    with TestClient(create_app(s), raise_server_exceptions=False) as bridge:
        for resp in (
            bridge.post(URL, content=install_body(), headers=FORM),
            bridge.get(URL, params=redirect(oauth.authorize(), member=MEMBER_ID)),
        ):
            error = check(resp, 409, "install_not_expected")
            assert "incoming webhook" in error["message"]
        assert oauth.stats()["refreshes"] == 0 and oauth.stats()["live_refresh_tokens"] == 0

        # Scanner probes (none of the install shapes) keep the old answers.
        check(bridge.get(URL), 405, "method_not_allowed")
        check(bridge.get(URL, params={"code": "x"}), 405, "method_not_allowed")
        check(bridge.post(URL, content=b"a=b", headers=FORM), 400, "bad_request")
        check(
            bridge.post(URL, content=php_form({"code": "x", "domain": DOMAIN}), headers=FORM),
            400,
            "bad_request",
        )
        control(bridge, MEMBER_ID)
    assert only_the_control(s)


def php_form_install(*, token: str = APP_TOKEN, member: str = MEMBER_ID) -> bytes:
    return php_form(
        event_doc(
            "ONAPPINSTALL",
            {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"},
            token=token,
            member_id=member,
        )
    )


def test_an_unreachable_token_endpoint_is_a_502_and_stores_nothing(settings, portal, db_url):
    base, oauth = portal
    s = oauth_settings(settings, base, EMU_MEMBER)
    dead = f"http://127.0.0.1:{free_port()}/oauth/token/"
    bx = s.bitrix24.model_copy(
        update={"oauth": s.bitrix24.oauth.model_copy(update={"token_url": dead})}
    )
    with TestClient(
        create_app(s.model_copy(update={"bitrix24": bx})), raise_server_exceptions=False
    ) as bridge:
        error = check(
            bridge.get(URL, params=redirect(oauth.authorize())), 502, "token_endpoint_unavailable"
        )
        assert "new code" in error["message"]
    assert stored(db_url) == []
