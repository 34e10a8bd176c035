"""OAuth mode against the emulator over real HTTP, with tokens in a real PostgreSQL: the token
in ``auth``, a refresh on ``expired_token`` stored in the token table, one refresh for many
concurrent callers and for several workers, a revoked token replaced by the stored one, and
no secret in any log line."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.errors import AuthFailed
from connectors.bitrix24.oauth import (
    MemoryTokenStore,
    PgTokenStore,
    TokenPair,
    request_authorization_code,
)
from mmstream.settings import Bitrix24Settings

CLIENT_ID = "local.mmstream.emulator"
CLIENT_SECRET = "dev-only-oauth-secret"
LIST = {"select": ["id", "iblockId"], "filter": {"iblockId": 14}}


def issue(base: str) -> dict:
    resp = httpx.post(f"{base}/_emulator/oauth/tokens", timeout=10)
    resp.raise_for_status()
    return resp.json()


def expire(base: str) -> None:
    httpx.post(f"{base}/_emulator/oauth/expire", timeout=10).raise_for_status()


def stats(base: str) -> dict:
    return httpx.get(f"{base}/_emulator/oauth", timeout=10).json()


def settings_for(base: str, pair: dict, **oauth) -> Bitrix24Settings:
    return Bitrix24Settings(
        auth_mode="oauth",
        rate_per_s=1000.0,
        burst=1000,
        oauth={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "portal": base,
            "access_token": pair["access_token"],
            "refresh_token": pair["refresh_token"],
            "token_url": f"{base}/oauth/token/",
            **oauth,
        },
    )


def test_calls_carry_the_token_and_an_expired_one_is_refreshed_once(emulator, caplog):
    base, _ = emulator
    pair = issue(base)
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with Bitrix24Client(settings_for(base, pair)) as client:
            await client.call("catalog.product.list", LIST)
            expire(base)
            # Many callers meet the expired token at once: one refresh serves them all.
            results = await asyncio.gather(
                *(client.call("catalog.product.list", LIST) for _ in range(20))
            )
            return results, client.oauth.refreshes

    results, refreshes = asyncio.run(scenario())
    assert all(r == {"products": []} for r in results)
    assert refreshes == 1 and stats(base)["refreshes"] == 1
    calls = httpx.get(f"{base}/_emulator/calls", timeout=10).json()
    statuses = [c["status"] for c in calls if c["method"] == "catalog.product.list"]
    assert statuses.count(200) == 21 and set(statuses) <= {200, 401}
    # No token, secret or refresh token in any log line (httpx logs the token URL).
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "oauth/token/" in messages
    for secret in (CLIENT_SECRET, pair["refresh_token"], pair["access_token"]):
        assert secret not in messages


@pytest.fixture
def engines(db_url):
    made = []

    def make():
        engine = create_async_engine(db_url)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        asyncio.run(engine.dispose())


def stored(db_url: str) -> tuple:
    async def read():
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                return (
                    await conn.execute(
                        text("SELECT portal, access_token, generation FROM bitrix24_oauth_token")
                    )
                ).one()
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_two_workers_refresh_once_through_the_token_table(emulator, db_url, engines):
    base, _ = emulator
    pair = issue(base)

    async def scenario():
        # Two "workers": separate clients, sessions and database connections.
        a = Bitrix24Client(settings_for(base, pair), token_store=PgTokenStore(engines()))
        b = Bitrix24Client(settings_for(base, pair), token_store=PgTokenStore(engines()))
        try:
            await asyncio.gather(
                a.call("catalog.product.list", LIST), b.call("catalog.product.list", LIST)
            )
            expire(base)
            await asyncio.gather(
                *(c.call("catalog.product.list", LIST) for c in (a, b) for _ in range(10))
            )
            return a.oauth.refreshes + b.oauth.refreshes
        finally:
            await a.aclose()
            await b.aclose()

    refreshes = asyncio.run(scenario())
    assert refreshes == 1
    assert stats(base) == {
        "refreshes": 1,
        "refused": 0,
        "live_access_tokens": 1,
        "live_refresh_tokens": 1,
    }
    portal, access, generation = stored(db_url)
    assert portal == base.removeprefix("http://") and generation == 2
    assert access != pair["access_token"]


def test_a_worker_whose_token_was_rotated_adopts_the_stored_pair(emulator, db_url, engines):
    base, _ = emulator
    pair = issue(base)

    async def scenario():
        a = Bitrix24Client(settings_for(base, pair), token_store=PgTokenStore(engines()))
        b = Bitrix24Client(settings_for(base, pair), token_store=PgTokenStore(engines()))
        try:
            await a.call("catalog.product.list", LIST)
            await b.call("catalog.product.list", LIST)
            expire(base)
            await a.call("catalog.product.list", LIST)  # A refreshes; B's token is revoked
            await b.call("catalog.product.list", LIST)  # invalid_token -> the stored pair
            return a.oauth.refreshes, b.oauth.refreshes
        finally:
            await a.aclose()
            await b.aclose()

    assert asyncio.run(scenario()) == (1, 0)
    assert stats(base)["refused"] == 0
    calls = httpx.get(f"{base}/_emulator/calls", timeout=10).json()
    assert [c["status"] for c in calls if c["method"] == "catalog.product.list"] == [
        200,
        200,
        401,
        200,
        401,
        200,
    ]


def test_a_restarted_worker_uses_the_stored_pair_not_the_spent_configured_one(
    emulator, db_url, engines
):
    base, _ = emulator
    pair = issue(base)

    async def scenario():
        async with Bitrix24Client(
            settings_for(base, pair), token_store=PgTokenStore(engines())
        ) as first:
            await first.call("catalog.product.list", LIST)
            expire(base)
            await first.call("catalog.product.list", LIST)
        # Same configured (now spent) pair, new process: the table wins.
        async with Bitrix24Client(
            settings_for(base, pair), token_store=PgTokenStore(engines())
        ) as second:
            result = await second.call("catalog.product.list", LIST)
            return result, second.oauth.refreshes

    assert asyncio.run(scenario()) == ({"products": []}, 0)
    assert stats(base)["refused"] == 0


def test_a_spent_refresh_token_is_auth_failed(emulator):
    base, _ = emulator
    pair = issue(base)
    # Someone else spends the refresh token (e.g. a second deployment with the same pair).
    httpx.get(
        f"{base}/oauth/token/",
        params={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": pair["refresh_token"],
        },
        timeout=10,
    ).raise_for_status()

    async def scenario():
        async with Bitrix24Client(settings_for(base, pair), token_store=MemoryTokenStore()) as c:
            with pytest.raises(AuthFailed) as caught:
                await c.call("catalog.product.list", LIST)
            return caught.value

    err = asyncio.run(scenario())
    # Our access token was revoked by that refresh and our refresh token is spent.
    assert err.alert and not err.retriable
    assert pair["refresh_token"] not in str(err) and pair["access_token"] not in str(err)


def test_a_token_about_to_expire_is_refreshed_before_the_call(db_url):
    from tests.connectors.bitrix24.conftest import serve_emulator

    with serve_emulator(
        webhook_path="/rest/1/testhook/", rate_per_s=1000.0, burst=1000, oauth_token_ttl_s=61.0
    ) as (base, _):
        pair = issue(base)

        async def scenario():
            async with Bitrix24Client(settings_for(base, pair, refresh_margin_s=60.0)) as c:
                await c.call("catalog.product.list", LIST)
                expire(base)
                await c.call("catalog.product.list", LIST)  # refresh on expired_token
                await asyncio.sleep(1.2)  # the new token is now within the margin
                await c.call("catalog.product.list", LIST)  # refreshed before calling
                return c.oauth.refreshes

        assert asyncio.run(scenario()) == 2
        calls = httpx.get(f"{base}/_emulator/calls", timeout=10).json()
        assert [c["status"] for c in calls if c["method"] == "catalog.product.list"] == [
            200,
            401,
            200,
            200,
        ]


def test_an_authorization_code_is_exchanged_once_and_installed_over_the_stored_pair(
    emulator, db_url, engines, caplog
):
    base, app = emulator
    oauth = settings_for(base, issue(base)).oauth
    code = app.state.oauth.authorize()
    caplog.set_level(logging.DEBUG)

    async def scenario():
        store = PgTokenStore(engines())
        await store.seed("portal", TokenPair("old-access", "old-refresh"))
        async with httpx.AsyncClient() as http:
            pair = await request_authorization_code(http, oauth, code)
            await store.install("portal", pair)
            with pytest.raises(AuthFailed):  # one use only
                await request_authorization_code(http, oauth, code)
        return pair

    pair = asyncio.run(scenario())
    assert app.state.oauth.check(pair.access_token) is None
    assert pair.member_id and pair.client_endpoint == f"{base}/rest/"
    assert stored(db_url) == ("portal", pair.access_token, 2)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "oauth/token/" in messages
    assert CLIENT_SECRET not in messages and code not in messages
