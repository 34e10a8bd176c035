"""What `mmctl run` adds to the settings: client URLs that follow moved emulator ports (unless
the user set them), the demo portal's token and funnels, and the per-flow counts of the status
line and page (pure functions)."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from devstack.stack.dev_settings import (
    DEMO_INSTANT_ORDER_CATEGORY,
    DEMO_RETURN_CATEGORY,
    follow_emulators,
    moved,
    with_demo_portal,
)
from devstack.stack.env import settings_env
from devstack.stack.flows import courier_counts, flow_counts, flows_text, master_count
from mmstream.settings import CourierObjectSettings, Settings


@pytest.fixture(autouse=True)
def _no_mm_environment(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MM_")]:
        monkeypatch.delenv(key)


def _settings(**kw) -> Settings:
    return Settings(_env_file=None, **kw)


def test_moved_emulators_move_every_default_client_url():
    settings = follow_emulators(_settings(embedded={"bitrix24_port": 18081, "onec_port": 18082}))
    env = settings_env(settings)  # what every child is started with
    assert env["MM_BITRIX24__WEBHOOK_URL"] == "http://127.0.0.1:18081/rest/1/devwebhookcode/"
    assert env["MM_ONEC__BASE_URL"] == "http://127.0.0.1:18082/trade/hs/mm/"
    assert env["MM_ODATA__BASE_URL"] == "http://127.0.0.1:18082/trade/odata/standard.odata/"
    assert env["MM_ONEC__ODATA_URL"] == ""  # derived from base_url by the client: follows it


def test_urls_the_user_set_stay_theirs():
    settings = follow_emulators(
        _settings(
            embedded={"bitrix24_port": 18081, "onec_port": 18082},
            bitrix24={"webhook_url": "https://portal.example.ru/rest/7/abcdefabcdefabcd/"},
            onec={
                "base_url": "http://onec.local/ut/hs/mm/",
                "odata_url": "http://onec.local/ut/odata/",
            },
        )
    )
    assert (
        settings.bitrix24.webhook_url.get_secret_value()
        == "https://portal.example.ru/rest/7/abcdefabcdefabcd/"
    )
    assert settings.onec.base_url == "http://onec.local/ut/hs/mm/"
    assert settings.onec.odata_url == "http://onec.local/ut/odata/"


def test_default_ports_change_nothing():
    before = _settings()
    after = follow_emulators(before)
    assert (
        after.bitrix24.webhook_url.get_secret_value()
        == before.bitrix24.webhook_url.get_secret_value()
    )
    assert after.onec.base_url == before.onec.base_url
    assert after.odata.base_url == before.odata.base_url


def test_oauth_portal_and_token_endpoint_follow_the_emulator():
    settings = follow_emulators(
        _settings(embedded={"bitrix24_port": 18081}, bitrix24={"auth_mode": "oauth"})
    )
    assert settings.bitrix24.oauth.portal == "http://127.0.0.1:18081"
    assert settings.bitrix24.oauth.token_url == "http://127.0.0.1:18081/oauth/token/"
    kept = follow_emulators(
        _settings(
            embedded={"bitrix24_port": 18081},
            bitrix24={"auth_mode": "oauth", "oauth": {"portal": "mastermobile.bitrix24.ru"}},
        )
    )
    assert kept.bitrix24.oauth.portal == "mastermobile.bitrix24.ru"
    assert kept.bitrix24.oauth.token_url == "https://oauth.bitrix.info/oauth/token/"


def test_moved_keeps_path_and_scheme():
    assert moved("", "http://127.0.0.1:8082/a/b/", 9) == "http://127.0.0.1:9/a/b/"
    assert moved("http://x/", "http://127.0.0.1:8082/a/b/", 9) == "http://x/"


def test_demo_portal_fills_only_what_is_unset():
    demo = with_demo_portal(_settings())
    assert len(demo.bitrix24.application_tokens) == 1
    assert demo.bitrix24.couriers.instant_order_category_id == DEMO_INSTANT_ORDER_CATEGORY
    assert demo.bitrix24.couriers.return_category_id == DEMO_RETURN_CATEGORY
    own = _settings(
        bitrix24={
            "application_tokens": {"m1": SecretStr("t" * 32)},
            "couriers": CourierObjectSettings(instant_order_category_id=DEMO_RETURN_CATEGORY),
        }
    )
    kept = with_demo_portal(own)
    assert list(kept.bitrix24.application_tokens) == ["m1"]
    assert kept.bitrix24.couriers.instant_order_category_id == DEMO_RETURN_CATEGORY
    assert (
        kept.bitrix24.couriers.return_category_id is None
    )  # 5 is taken by the user's instant orders


METRICS = """
mm_egress_deliveries_total{entity="product",outcome="delivered",target="bitrix24"} 80.0
mm_egress_deliveries_total{entity="counterparty",outcome="delivered",target="bitrix24"} 1.0
mm_egress_deliveries_total{entity="product",outcome="retried",target="bitrix24"} 4.0
mm_egress_deliveries_total{entity="instant_order",outcome="delivered",target="bitrix24"} 9.0
mm_egress_deliveries_total{entity="delivery_task",outcome="delivered",target="bitrix24"} 7.0
mm_egress_deliveries_total{entity="instant_order",outcome="delivered",target="onec"} 9.0
"""


def test_flow_counts_master_from_metrics_the_rest_from_the_1c_state():
    samples = [s for fam in text_string_to_metric_families(METRICS) for s in fam.samples]
    assert (
        master_count(samples) == 81.0
    )  # courier writes to Bitrix24 and retries are not master data
    operations = [
        {"operation": "instant_order"},
        {"operation": "return"},
        {"operation": "return"},
        {"operation": "delivery_status", "delivery_status": "delivered"},
        {"operation": "delivery_status", "delivery_status": "failed"},
    ]
    courier = courier_counts(operations, [{"Posted": True}, {"Posted": False}, {"Posted": True}])
    counts = flow_counts(samples, courier)
    assert counts == {
        "master": 81.0,
        "deliveries": 1.0,
        "instant orders": 1.0,
        "returns": 2.0,
        "cash": 2.0,
    }
    assert flows_text(counts) == "master 81 | deliveries 1 | instant orders 1 | returns 2 | cash 2"
    assert flow_counts([]) == dict.fromkeys(counts, 0.0)
