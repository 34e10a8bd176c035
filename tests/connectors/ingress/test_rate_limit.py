"""Per-client rate limit: a leaky bucket per principal (per address, apart, without credentials),
429 + Retry-After over it, nothing published for a refused request, probes never limited."""

from __future__ import annotations

import pytest

from connectors.ingress.auth import mint_token
from connectors.ingress.ratelimit import ClientLimiter
from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog
from tests.support.stack import onec_product
from tests.support.topics import count_records

URL = "/v1/onec/products"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_limiter_admits_a_burst_then_says_how_long_to_wait():
    clock = Clock()
    limiter = ClientLimiter(2.0, 3, clock=clock)
    assert [limiter.admit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.admit("a") == pytest.approx(0.5)
    assert limiter.admit("b") == 0.0  # clients do not share a bucket
    clock.now += 0.5
    assert limiter.admit("a") == 0.0
    assert limiter.admit("a") > 0.0


def test_limiter_forgets_idle_clients_and_stays_bounded():
    clock = Clock()
    limiter = ClientLimiter(1.0, 5, max_clients=3, clock=clock)
    for client in ("a", "b", "c"):
        limiter.admit(client)
    clock.now += 10  # every bucket drained
    limiter.admit("d")
    assert len(limiter) == 1
    for n in range(10):  # busy clients only: the oldest are dropped, the count stays bounded
        limiter.admit(f"busy-{n}")
        assert len(limiter) <= 3


@pytest.fixture
def bridge_settings(settings):
    # A burst of 2 and a rate so low that no bucket drains during the test.
    s = settings.model_copy(
        update={
            "ingress": settings.ingress.model_copy(
                update={
                    "client_rate_per_s": 0.01,
                    "client_burst": 2,
                    "unverified_rate_per_s": 0.01,
                    "unverified_burst": 2,
                }
            )
        }
    )
    apply(s, load_catalog(s.topics_file))
    return s


def test_over_the_burst_is_429_with_retry_after_per_principal(bridge, bridge_settings, token):
    auth = {"Authorization": f"Bearer {token}"}
    first = [onec_product(), onec_product()]
    for record in first:
        assert bridge.post(URL, json=record, headers=auth).status_code == 202
    refused = bridge.post(URL, json=onec_product(), headers=auth)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]
    assert int(refused.headers["retry-after"]) == 100  # one slot at 0.01/s

    other = mint_token(bridge_settings.auth, subject="another-1c", roles=["1c"])
    third = onec_product()
    assert (
        bridge.post(URL, json=third, headers={"Authorization": f"Bearer {other}"}).status_code
        == 202
    )
    for _ in range(5):
        assert bridge.get("/health/live").status_code == 200
        assert bridge.get("/metrics").status_code == 200

    records = count_records(bridge_settings, "raw.onec.product", expect_at_least=3, quiet_s=0)
    assert sorted(r.key().decode() for r in records) == sorted(
        r["Ref_Key"] for r in [*first, third]
    )


def test_anonymous_callers_are_limited_by_address_apart_from_verified_ones(bridge, token):
    answers = [bridge.post(URL, json=onec_product()).status_code for _ in range(4)]
    assert answers == [401, 401, 429, 429]
    # The same address with a valid token draws on its own bucket, untouched by the junk.
    assert (
        bridge.post(
            URL, json=onec_product(), headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 202
    )
