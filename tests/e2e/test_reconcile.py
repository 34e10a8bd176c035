"""End-to-end reconcile (issue 14, item 1) on the real broker, PostgreSQL, bridge, workers and
the Bitrix24 and 1С emulators, with ``mmctl reconcile`` run as a subprocess, as users run it.

Master data reaches Bitrix24; then drift is made behind the pipeline's back: a price type and
a company are deleted in the portal, a product renamed there, a store with a 1С key that never reached us
is created there (an orphan: 1С holds it, PostgreSQL lost it), and a warehouse is changed in
1С's OData base without a push. ``mmctl reconcile`` lists each of them once;
``--repair`` fixes them through the pipeline (audited; the portal's objects right again,
nothing created twice), and a second reconcile finds no drift.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import httpx
import pytest

from mmstream.models.price import price_id
from tests.e2e.test_egress_master import catalog, state, wait_for
from tests.e2e.test_master_self_repair import portal_call, xwalk
from tests.support.stack import onec_product

pytestmark = pytest.mark.e2e

ODATA = "/trade/odata/standard.odata/"


@pytest.fixture
def settings(settings):
    # A price waits on the delayed path while its price type is being recreated.
    return settings.model_copy(
        update={"retry": settings.retry.model_copy(update={"max_attempts": 60, "budget_s": 60})}
    )


def mmctl(pipeline, *args: str) -> tuple[int, dict]:
    """``mmctl reconcile … --output json`` in its own process; (exit code, report)."""
    done = subprocess.run(
        [sys.executable, "-m", "mmstream.cli.main", "reconcile", *args, "--output", "json"],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 3), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def drift_set(report: dict) -> list[tuple[str, str, str, str]]:
    return sorted((d["entity"], d["target"], d["kind"], d["canonical_id"]) for d in report["drift"])


def onec_write(pipeline, entity_set: str, record: dict) -> dict:
    """A record written in the 1С base (the emulator gives it a new DataVersion)."""
    resp = httpx.put(f"{pipeline.onec_url}/_emulator/odata/{entity_set}", json=record, timeout=10)
    resp.raise_for_status()
    return resp.json()


def test_reconcile_finds_each_drift_once_and_repairs_it_through_the_pipeline(pipeline):
    pipeline.settings = pipeline.settings.model_copy(
        update={
            "odata": pipeline.settings.odata.model_copy(
                update={"enabled": True, "base_url": pipeline.onec_url + ODATA}
            )
        }
    )
    pipeline.start_emulator()
    pipeline.start_onec_emulator()
    pipeline.start_entity_sink()
    pipeline.start_sink()
    pipeline.start_egress()
    pipeline.start_bridge()
    product, store, ptype, lost, company = (str(uuid.uuid4()) for _ in range(5))
    price = str(price_id(uuid.UUID(product), None, uuid.UUID(ptype)))

    # The warehouse lives in 1С's base; it is pushed as stored there (same DataVersion).
    stored = onec_write(
        pipeline, "Catalog_Склады", catalog(store, "x", "Склад 1", Адрес="Москва, Складская 1")
    )
    posts = [
        ("ВидыЦен", catalog(ptype, "AAAAAQ==", "Розничная", ЦенаВключаетНДС=True)),
        ("Склады", stored),
        (
            "Контрагенты",
            catalog(
                company,
                "AAAAAQ==",
                "ООО Ромашка",
                ИНН="7701234567",
                ЮрФизЛицо="ЮрЛицо",
                Покупатель=True,
            ),
        ),
        (
            "ЦеныНоменклатуры",
            {
                "Period": "2026-01-10T00:00:00",
                "Номенклатура_Key": product,
                "ВидЦены_Key": ptype,
                "DataVersion": "p1",
                "Цена": 101,
                "Active": True,
            },
        ),
    ]
    for name, record in posts:
        resp = pipeline.post_onec(name, record)
        assert resp.status_code == 202, (name, resp.text)
    resp = pipeline.post_product(onec_product(product, Description="Чай"))
    assert resp.status_code == 202, resp.text

    def ours():
        found = {
            "product": [p for p in pipeline.emulator_products() if p["xmlId"] == product],
            "price_type": [
                t for t in state(pipeline, "directory/priceType") if t["xmlId"] == ptype
            ],
            "warehouse": [s for s in state(pipeline, "directory/store") if s["xmlId"] == store],
            "counterparty": companies(pipeline, company),
        }
        if not all(len(rows) == 1 for rows in found.values()):
            return None
        found["price"] = [
            p
            for p in state(pipeline, "directory/price")
            if p["productId"] == found["product"][0]["id"]
            and p["catalogGroupId"] == found["price_type"][0]["id"]
        ]
        return found if len(found["price"]) == 1 else None

    first = wait_for(pipeline, "master data in Bitrix24", ours, 90)
    settled(pipeline)
    code, report = mmctl(pipeline)
    assert (code, report["drift"]) == (0, []), report
    assert report["compared"]["warehouse/bitrix24"] >= 1

    # -- drift behind the pipeline's back ----------------------------------------------------
    ptype_id = first["price_type"][0]["id"]
    resp = httpx.delete(
        f"{pipeline.emulator_url}/_emulator/entities/priceType/{ptype_id}", timeout=10
    )
    assert resp.status_code == 200, resp.text
    # A manager deletes our company in the portal.
    resp = httpx.delete(
        f"{pipeline.emulator_url}/_emulator/entities/company/{first['counterparty'][0]['ID']}",
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    # A manager renames our product through the portal's API.
    portal_call(
        pipeline,
        "catalog.product.update",
        {"id": first["product"][0]["id"], "fields": {"name": "Переименовал менеджер"}},
    )
    # A store 1С holds and egress once wrote, whose row PostgreSQL lost.
    onec_write(pipeline, "Catalog_Склады", catalog(lost, "x", "Потерянный склад", Адрес="Тверь"))
    orphan_id = portal_call(
        pipeline,
        "catalog.store.add",
        {"fields": {"title": "Потерянный склад (старое)", "address": "Тверь", "xmlId": lost}},
    )["store"]["id"]
    # Changed in 1С, never pushed.
    onec_write(
        pipeline, "Catalog_Склады", catalog(store, "x", "Склад 2", Адрес="Москва, Складская 1")
    )

    table = subprocess.run(
        [sys.executable, "-m", "mmstream.cli.main", "reconcile"],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 3, table.stderr[-3000:]
    for kind in ("deleted", "differs", "orphan", "newer_at_source"):
        assert kind in table.stdout, table.stdout
    code, report = mmctl(pipeline)
    assert code == 3
    assert drift_set(report) == sorted(
        [
            ("price_type", "bitrix24", "deleted", ptype),
            ("counterparty", "bitrix24", "deleted", company),
            # The portal deletes a price type's prices with it.
            ("price", "bitrix24", "deleted", price),
            ("product", "bitrix24", "differs", product),
            ("warehouse", "bitrix24", "orphan", lost),
            ("warehouse", "onec", "newer_at_source", store),
            ("warehouse", "onec", "newer_at_source", lost),
        ]
    ), report
    (differs,) = [d for d in report["drift"] if d["kind"] == "differs"]
    assert differs["fields"] == {"name": {"ours": "Чай", "theirs": "Переименовал менеджер"}}
    # Reporting changed nothing.
    assert pipeline.sql("SELECT count(*) FROM ops_audit WHERE action = 'reconcile.repair'") == [
        (0,)
    ]

    adds_before = store_and_type_adds(pipeline, ptype, lost, store, company)
    code, report = mmctl(pipeline, "--repair")
    assert code == 0, report
    actions = sorted((r["kind"], r["canonical_id"], r["action"]) for r in report["repairs"])
    assert actions == sorted(
        [
            ("deleted", ptype, "republished"),
            ("deleted", price, "republished"),
            ("deleted", company, "republished"),
            ("differs", product, "republished"),
            ("orphan", lost, "reread"),
            ("newer_at_source", store, "reread"),
            ("newer_at_source", lost, "covered"),
        ]
    ), report
    audited = pipeline.sql(
        "SELECT target, details->'before'->>'kind' FROM ops_audit "
        "WHERE action = 'reconcile.repair' ORDER BY id"
    )
    assert sorted(audited) == sorted(
        [
            (f"price_type:{ptype}", "deleted"),
            (f"counterparty:{company}", "deleted"),
            (f"price:{price}", "deleted"),
            (f"product:{product}", "differs"),
            (f"warehouse:{lost}", "orphan"),
            (f"warehouse:{store}", "newer_at_source"),
        ]
    )

    def repaired():
        types = [t for t in state(pipeline, "directory/priceType") if t["xmlId"] == ptype]
        products = [p for p in pipeline.emulator_products() if p["xmlId"] == product]
        prices = [
            p["price"]
            for p in state(pipeline, "directory/price")
            if types and p["catalogGroupId"] == types[0]["id"]
        ]
        stores = {s["xmlId"]: s for s in state(pipeline, "directory/store")}
        count = [s["xmlId"] for s in state(pipeline, "directory/store")]
        ok = (
            len(types) == 1
            and types[0]["name"] == "Розничная"
            and [p["name"] for p in products] == ["Чай"]
            and prices == [101.0]
            and count.count(lost) == 1
            and stores[lost]["title"] == "Потерянный склад"
            and count.count(store) == 1
            and stores[store]["title"] == "Склад 2"
            and [c["TITLE"] for c in companies(pipeline, company)] == ["ООО Ромашка"]
        )
        return (types, stores) if ok else None

    types, stores = wait_for(pipeline, "the drift repaired in Bitrix24", repaired, 90)
    # The orphan was adopted (updated and linked), not created a second time; the deleted
    # price type was created once; the warehouse changed in 1С was updated in place.
    assert stores[lost]["id"] == orphan_id
    assert xwalk(pipeline, "warehouse", lost) == str(orphan_id)
    assert xwalk(pipeline, "price_type", ptype) == str(types[0]["id"])
    after = store_and_type_adds(pipeline, ptype, lost, store, company)
    assert adds_before["lost"] == 1 and adds_before["store"] == 1  # the test's, egress's
    assert after == {
        **adds_before,
        "price_type": adds_before["price_type"] + 1,
        "company": adds_before["company"] + 1,
    }
    # The company was created once more and linked to its new id.
    assert (
        xwalk(pipeline, "counterparty", company)
        == f"company:{companies(pipeline, company)[0]['ID']}"
    )
    assert pipeline.sql("SELECT name FROM warehouse WHERE id = %s", store) == [("Склад 2",)]

    settled(pipeline)
    code, report = mmctl(pipeline)
    assert (code, report["drift"]) == (0, []), report


def store_and_type_adds(
    pipeline, ptype: str, lost: str, store: str, company: str
) -> dict[str, int]:
    calls = pipeline.emulator_calls()

    def adds(method: str, key: str, key_field: str = "xmlId") -> int:
        return len(
            [
                c
                for c in calls
                if c["method"].lower() == method.lower()
                and c["status"] == 200
                and (c["params"].get("fields") or {}).get(key_field) == key
            ]
        )

    return {
        "price_type": adds("catalog.priceType.add", ptype),
        "company": adds("crm.company.add", company, "ORIGIN_ID"),
        "lost": adds("catalog.store.add", lost),
        "store": adds("catalog.store.add", store),
    }


def companies(pipeline, key: str) -> list[dict]:
    """The portal's companies carrying our key."""
    return [c for c in state(pipeline, "entities/company") if c.get("ORIGIN_ID") == key]


def settled(pipeline) -> None:
    """Every outbox entry published and delivered to Bitrix24 (nothing in flight)."""
    pipeline.wait_sql(
        "SELECT count(*) FROM outbox o WHERE o.entity IN ('product', 'warehouse', 'price_type', "
        "'counterparty', 'price') AND (o.published_at IS NULL OR NOT EXISTS (SELECT 1 FROM "
        "egress_delivery d WHERE d.target = 'bitrix24' AND d.entity = o.entity AND "
        "d.entity_id = o.entity_id AND d.last_outbox_id >= o.id))",
        lambda rows: rows == [(0,)],
        60,
    )
