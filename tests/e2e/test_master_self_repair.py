"""Self-repairing master data end to end (issue 14, item 2), on the real broker, PostgreSQL,
bridge, workers and the Bitrix24 emulator.

`make run`, Ctrl-C, `make run` again used to dead-letter every later 1С change: PostgreSQL
kept its crosswalk while the emulated portal started empty and reissued ids; the same
happens for real whenever a manager deletes a product, company or warehouse in Bitrix24.
Here a product, a company, a warehouse, a price type and a price reach Bitrix24; then

1. the portal is reset and a manager's own objects take the reissued ids our crosswalk
   points at: 1С's next changes must not overwrite them, but create ours again and relink;
2. our objects are deleted in the portal: 1С's next changes create them again.

Every time: each object exists once with the newest version, the crosswalk names it, no
change is dead-lettered and nothing is created twice.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.test_egress_master import catalog, contact_line, state, wait_for
from tests.support.stack import onec_product
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

KINDS = ("product", "counterparty", "warehouse", "price_type", "price")


@pytest.fixture
def settings(settings):
    # A price waits on the delayed path while its product is being recreated (~0.5 s a try).
    return settings.model_copy(
        update={"retry": settings.retry.model_copy(update={"max_attempts": 60, "budget_s": 60})}
    )


def portal_call(pipeline, method: str, params: dict):
    """A call a Bitrix24 user's own integration makes on the portal (not ours)."""
    url = pipeline.settings.bitrix24.webhook_url.get_secret_value() + f"{method}.json"
    resp = httpx.post(url, json=params, timeout=10)
    resp.raise_for_status()
    return resp.json()["result"]


def xwalk(pipeline, entity: str, canonical_id: str) -> str | None:
    rows = pipeline.sql(
        "SELECT external_id FROM crosswalk WHERE system = 'bitrix24' AND "
        "entity = %s AND canonical_id = %s",
        entity,
        canonical_id,
    )
    return rows[0][0] if rows else None


def test_master_data_deleted_or_reissued_in_bitrix24_is_recreated_and_relinked(pipeline):
    pipeline.start_emulator()
    pipeline.start_entity_sink()
    pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()
    product, company, store, ptype = (str(uuid.uuid4()) for _ in range(4))
    phones = [contact_line(1, "Телефон", "+7 495 111-22-33")]

    def send(n: int) -> None:
        """Version ``n`` of every object from 1С (a later one changes every name)."""
        version = f"AAAAA{'QIDBAUG'[n - 1]}=="
        posts = [
            ("ВидыЦен", catalog(ptype, version, f"Розничная {n}", ЦенаВключаетНДС=True)),
            ("Склады", catalog(store, version, f"Склад {n}", Адрес="Москва, Складская 1")),
            (
                "Контрагенты",
                catalog(
                    company,
                    version,
                    f"ООО Ромашка {n}",
                    ИНН="7701234567",
                    ЮрФизЛицо="ЮрЛицо",
                    Покупатель=True,
                    КонтактнаяИнформация=phones,
                ),
            ),
            (
                "ЦеныНоменклатуры",
                {
                    "Period": "2026-01-10T00:00:00",
                    "Номенклатура_Key": product,
                    "ВидЦены_Key": ptype,
                    "DataVersion": f"p{n}",
                    "Цена": 100 + n,
                    "Active": True,
                },
            ),
        ]
        for name, record in posts:
            resp = pipeline.post_onec(name, record)
            assert resp.status_code == 202, (name, resp.text)
        resp = pipeline.post_product(
            onec_product(product, version=f"AAAAA{n}AAAAA=", Description=f"Чай {n}")
        )
        assert resp.status_code == 202, resp.text

    def ours(n: int) -> dict[str, dict]:
        """Our objects in the portal once version ``n`` of each has arrived (one each)."""

        def probe():
            found = {
                "product": [p for p in pipeline.emulator_products() if p["xmlId"] == product],
                "price_type": [
                    t for t in state(pipeline, "directory/priceType") if t["xmlId"] == ptype
                ],
                "warehouse": [s for s in state(pipeline, "directory/store") if s["xmlId"] == store],
                "counterparty": [
                    c for c in state(pipeline, "entities/company") if c["ORIGIN_ID"] == company
                ],
            }
            names = {
                "product": ("name", f"Чай {n}"),
                "price_type": ("name", f"Розничная {n}"),
                "warehouse": ("title", f"Склад {n}"),
                "counterparty": ("TITLE", f"ООО Ромашка {n}"),
            }
            if any(
                len(rows) != 1 or rows[0][names[k][0]] != names[k][1] for k, rows in found.items()
            ):
                return None
            mine = {k: rows[0] for k, rows in found.items()}
            prices = [
                p
                for p in state(pipeline, "directory/price")
                if p["productId"] == mine["product"]["id"]
                and p["catalogGroupId"] == mine["price_type"]["id"]
            ]
            if [p["price"] for p in prices] != [100.0 + n]:
                return None
            return {**mine, "price": prices[0]}

        return wait_for(pipeline, f"version {n} of every object in Bitrix24", probe, 90)

    def assert_linked(objects: dict[str, dict]) -> None:
        assert xwalk(pipeline, "product", product) == str(objects["product"]["id"])
        assert xwalk(pipeline, "price_type", ptype) == str(objects["price_type"]["id"])
        assert xwalk(pipeline, "warehouse", store) == str(objects["warehouse"]["id"])
        assert (
            xwalk(pipeline, "counterparty", company) == f"company:{objects['counterparty']['ID']}"
        )

    def adds() -> dict[str, int]:
        """The creates of our objects the portal has seen (its log restarts with a reset)."""
        calls = pipeline.emulator_calls()

        def count(method: str, key_field: str | None = None, key: str | None = None) -> int:
            # Method names are case-insensitive at the portal (catalog.pricetype.add).
            return len(
                [
                    c
                    for c in calls
                    if c["method"].lower() == method.lower()
                    and c["status"] == 200
                    and (
                        key_field is None or (c["params"].get("fields") or {}).get(key_field) == key
                    )
                ]
            )

        return {
            "product": count("catalog.product.add", "xmlId", product),
            "price_type": count("catalog.priceType.add", "xmlId", ptype),
            "warehouse": count("catalog.store.add", "xmlId", store),
            "counterparty": count("crm.company.add", "ORIGIN_ID", company),
            "price": count("catalog.price.add"),
        }

    send(1)
    first = ours(1)
    assert_linked(first)
    assert first["product"]["id"] == first["warehouse"]["id"] == 1

    # 1. The portal is reset and a manager's own objects take id 1 again.
    httpx.post(f"{pipeline.emulator_url}/_emulator/reset", timeout=10).raise_for_status()
    theirs = {
        "product": portal_call(
            pipeline,
            "catalog.product.add",
            {
                "fields": {
                    "iblockId": pipeline.settings.bitrix24.product_iblock_id,
                    "name": "Менеджерский",
                }
            },
        )["element"],
        "price_type": portal_call(
            pipeline,
            "catalog.priceType.add",
            {"fields": {"name": "Менеджерская", "xmlId": "manager-type"}},
        )["priceType"],
        "warehouse": portal_call(
            pipeline,
            "catalog.store.add",
            {"fields": {"title": "Менеджерский", "address": "Тверь", "xmlId": "manager-store"}},
        )["store"],
        "counterparty": portal_call(
            pipeline,
            "crm.company.add",
            {
                "fields": {
                    "TITLE": "Из другой системы",
                    "ORIGIN_ID": "crm-77",
                    "ORIGINATOR_ID": "other",
                }
            },
        ),
    }
    assert [theirs[k]["id"] for k in ("product", "price_type", "warehouse")] == [1, 1, 1]
    assert theirs["counterparty"] == 1
    send(2)
    second = ours(2)
    assert_linked(second)
    assert all(second[k]["id"] == 2 for k in ("product", "price_type", "warehouse"))
    assert second["counterparty"]["ID"] == "2"
    assert adds() == dict.fromkeys(KINDS, 1)
    # The manager's objects were not written over.
    (manager_product,) = [p for p in pipeline.emulator_products() if p["id"] == 1]
    assert manager_product["name"] == "Менеджерский"
    assert [t["name"] for t in state(pipeline, "directory/priceType") if t["id"] == 1] == [
        "Менеджерская"
    ]
    assert [s["title"] for s in state(pipeline, "directory/store") if s["id"] == 1] == [
        "Менеджерский"
    ]
    assert [c["TITLE"] for c in state(pipeline, "entities/company") if c["ID"] == "1"] == [
        "Из другой системы"
    ]
    for method in (
        "catalog.product.update",
        "catalog.priceType.update",
        "catalog.store.update",
        "crm.company.update",
    ):
        assert all(str(c["params"]["id"]) != "1" for c in pipeline.emulator_calls(method)), method

    # 2. A manager deletes our objects in the portal (the price goes with its product).
    for path in (
        f"product/{second['product']['id']}",
        f"store/{second['warehouse']['id']}",
        f"priceType/{second['price_type']['id']}",
        f"company/{second['counterparty']['ID']}",
    ):
        resp = httpx.delete(f"{pipeline.emulator_url}/_emulator/entities/{path}", timeout=10)
        assert resp.status_code == 200, (path, resp.text)
    before = adds()
    send(3)
    third = ours(3)
    assert_linked(third)
    assert all(third[k]["id"] == 3 for k in ("product", "price_type", "warehouse"))
    assert third["counterparty"]["ID"] == "3"
    assert adds() == {kind: before[kind] + 1 for kind in KINDS}

    # Nothing dead-lettered, nothing left waiting, no refused relink.
    pipeline.wait_sql("SELECT count(*) FROM egress_parked", lambda r: r == [(0,)], 30)
    for kind in KINDS:
        assert count_records(pipeline.settings, f"dlq.egress.bitrix24.{kind}", timeout_s=3) == [], (
            kind
        )
    egress_log = pipeline.procs["egress"].log_path.read_text("utf-8", errors="replace")
    assert "is linked to" not in egress_log
    assert "recreating it" in egress_log and "relinking instead of overwriting" in egress_log
