"""The reconcile's pure classification: canonical rows, crosswalk and a target listing in,
the drift list out (stages/reconcile/drift.py), plus the Bitrix24 specs' expectations."""

from __future__ import annotations

import uuid

from stages.reconcile.bitrix24 import Family, page_rows, specs
from stages.reconcile.drift import (
    Canonical,
    TargetRow,
    classify_source,
    classify_target,
    field_diff,
    is_ours,
    summary,
)

A, B, C, D, E = (str(uuid.UUID(int=i)) for i in range(1, 6))


def store(ident: int, key: str, title: str, active: str = "Y") -> TargetRow:
    return TargetRow(str(ident), {"id": ident, "xmlId": key, "title": title, "active": active})


def kinds(drifts) -> list[tuple[str, str]]:
    return sorted((d.kind, d.canonical_id) for d in drifts)


def test_in_step_objects_give_no_drift():
    canonical = [Canonical(A, {"title": "Склад 1", "active": "Y"}, "1")]
    assert (
        classify_target("warehouse", "bitrix24", "xmlId", canonical, [store(1, A, "Склад 1")]) == []
    )


def test_each_kind_is_told_apart():
    canonical = [
        Canonical(A, {"title": "Склад A"}, "1"),  # in step
        Canonical(B, {"title": "Склад B"}, "2"),  # deleted in the portal
        Canonical(C, {"title": "Склад C"}, "3"),  # edited in the portal
        Canonical(D, {"title": "Склад D"}, None),  # never delivered
        Canonical(E, {"title": "Склад E"}, "4"),  # id 4 reissued to a manager's store
    ]
    orphan = str(uuid.uuid4())
    rows = [
        store(1, A, "Склад A"),
        store(3, C, "Переименован"),
        store(4, "manager", "Его"),
        store(9, orphan, "Наш, но не знаем"),
        store(10, "", "Без ключа"),
    ]
    drifts = classify_target("warehouse", "bitrix24", "xmlId", canonical, rows)
    assert kinds(drifts) == sorted(
        [("deleted", B), ("differs", C), ("missing", D), ("relinked", E), ("orphan", orphan)]
    )
    (differs,) = [d for d in drifts if d.kind == "differs"]
    assert differs.fields == {"title": {"ours": "Склад C", "theirs": "Переименован"}}
    assert differs.external_id == "3"
    (relinked,) = [d for d in drifts if d.kind == "relinked"]
    assert "manager" in relinked.detail
    assert summary(drifts)[("warehouse", "bitrix24", "missing")] == 1


def test_our_object_at_another_id_is_a_stale_link_not_missing():
    # The crosswalk names 5 (gone), but the portal holds our key at 7: egress relinks.
    drifts = classify_target(
        "warehouse", "bitrix24", "xmlId", [Canonical(A, {"title": "x"}, "5")], [store(7, A, "x")]
    )
    assert kinds(drifts) == [("relinked", A)]
    assert drifts[0].external_id == "5" and "7" in drifts[0].detail
    # And an unlinked object found by its key is a missing link, not a missing object.
    drifts = classify_target(
        "warehouse", "bitrix24", "xmlId", [Canonical(A, {"title": "x"}, None)], [store(7, A, "x")]
    )
    assert kinds(drifts) == [("relinked", A)]


def test_a_deleted_row_need_not_be_at_the_target_but_is_compared_when_there():
    gone = Canonical(A, {"active": "N"}, "1", present=False)
    assert classify_target("warehouse", "bitrix24", "xmlId", [gone], []) == []
    drifts = classify_target("warehouse", "bitrix24", "xmlId", [gone], [store(1, A, "x", "Y")])
    assert kinds(drifts) == [("differs", A)]


def test_duplicates_by_key_compare_the_oldest_like_egress():
    drifts = classify_target(
        "warehouse",
        "bitrix24",
        "xmlId",
        [Canonical(A, {"title": "x"}, None)],
        [store(8, A, "dup"), store(3, A, "x")],
    )
    assert drifts[0].external_id == "3"


def test_keyless_crm_record_linked_to_us_counts_as_ours():
    row = TargetRow("company:4", {"ID": "4", "ORIGIN_ID": None, "TITLE": "ООО"})
    canonical = [Canonical(A, {"TITLE": "ООО"}, "company:4")]
    assert (
        classify_target(
            "counterparty", "bitrix24", "ORIGIN_ID", canonical, [row], keyless_is_ours=True
        )
        == []
    )
    assert kinds(classify_target("counterparty", "bitrix24", "ORIGIN_ID", canonical, [row])) == [
        ("relinked", A)
    ]


def test_field_comparison_follows_the_portal_echo():
    assert (
        field_diff(
            {"active": True, "price": 100.0, "name": " Чай "},
            {"active": "Y", "price": "100", "name": "Чай"},
        )
        == {}
    )
    assert field_diff({"code": ""}, {}) == {}
    assert field_diff({"code": "A1"}, {"code": None}) == {"code": {"ours": "A1", "theirs": None}}


def test_orphans_need_our_key_shape_or_our_originator():
    assert is_ours(A) and not is_ours("manager-store") and not is_ours("15")
    spec = specs(14)["counterparty"]
    theirs = TargetRow("company:5", {"ID": "5", "ORIGIN_ID": B, "ORIGINATOR_ID": "other"})
    ours = TargetRow("company:6", {"ID": "6", "ORIGIN_ID": C, "ORIGINATOR_ID": "mmstream"})
    drifts = classify_target(
        "counterparty",
        "bitrix24",
        "ORIGIN_ID",
        [],
        [theirs, ours],
        keyless_is_ours=True,
        orphan_key=spec.orphan,
    )
    assert kinds(drifts) == [("orphan", C)]


def test_newer_at_source_is_a_version_never_seen():
    drifts = classify_source(
        "warehouse", "onec", {A: "v2", B: "v1", C: "v1"}, {A: {"v1"}, B: {"v1", "v0"}}
    )
    assert kinds(drifts) == [("newer_at_source", A), ("newer_at_source", C)]
    assert all(d.target == "onec" for d in drifts)


def test_specs_expect_what_egress_writes():
    spec = specs(14)
    store_row = {
        "id": A,
        "name": "Склад",
        "address": "",
        "code": "01",
        "deleted": False,
        "source": "onec",
        "phones": [],
        "comment": "",
    }
    expected = spec["warehouse"].expect(store_row, "3")
    assert expected.linked == "3" and expected.present
    assert expected.expected["title"] == "Склад" and expected.expected["address"] == "Склад"
    assert "xmlId" not in expected.expected
    # An echo from Bitrix24 and a folder are not written by egress: nothing to compare.
    assert spec["warehouse"].expect({**store_row, "source": "bitrix24"}, None) is None
    assert spec["warehouse"].expect({**store_row, "is_folder": True}, None) is None
    deleted = spec["warehouse"].expect({**store_row, "deleted": True}, "3")
    assert deleted.expected == {"active": "N"} and not deleted.present
    company = {
        "id": B,
        "kind": "legal_entity",
        "name": "ООО Ромашка",
        "is_customer": True,
        "source": "onec",
        "writers": ["onec"],
        "legal_form": "legal_entity",
    }
    got = spec["counterparty"].expect(company, None)
    assert got.expected == {"TITLE": "ООО Ромашка", "COMPANY_TYPE": "CUSTOMER"}
    # Born in Bitrix24, never in 1С: not ours to write.
    assert spec["counterparty"].expect({**company, "writers": ["bitrix24"]}, None) is None


def test_page_rows_reads_both_answer_shapes():
    catalog = Family("catalog.store.list", "stores", "id", ("id",))
    crm = Family("crm.company.list", None, "ID", ("ID",))
    assert page_rows(catalog, {"stores": [{"id": 1}, "junk"]}) == [{"id": 1}]
    assert page_rows(crm, [{"ID": "1"}]) == [{"ID": "1"}]
    assert page_rows(catalog, None) == []


# ---- listing the portal page by id (the emulator in-process, the project's client) ------


def test_listing_pages_by_id_through_every_row_of_each_family():
    import asyncio

    import httpx

    from connectors.bitrix24.client import Bitrix24Client
    from devstack.emulators.bitrix24 import create_app
    from mmstream.settings import Bitrix24Settings
    from stages.reconcile.bitrix24 import list_family

    base, hook = "http://portal.test", f"/rest/7/{uuid.uuid4().hex}/"
    app = create_app(webhook_path=hook, rate_per_s=1000.0, burst=1000)
    spec = specs(14)

    async def scenario():
        client = Bitrix24Client(
            Bitrix24Settings(webhook_url=base + hook, rate_per_s=1e6, burst=1000),
            transport=httpx.ASGITransport(app=app),
        )
        async with client:
            keys = [str(uuid.uuid4()) for _ in range(120)]
            for n, key in enumerate(keys):  # more than two pages of 50
                await client.call(
                    "catalog.store.add",
                    {"fields": {"title": f"Склад {n}", "address": "Москва", "xmlId": key}},
                )
            for n in range(3):
                await client.call(
                    "crm.company.add",
                    {
                        "fields": {
                            "TITLE": f"ООО {n}",
                            "ORIGIN_ID": keys[n],
                            "ORIGINATOR_ID": "mmstream",
                        }
                    },
                )
            stores = await list_family(client, spec["warehouse"].families[0])
            companies = await list_family(client, spec["counterparty"].families[0])
            calls = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
            listed = [
                c
                for c in (await calls.get("/_emulator/calls")).json()
                if c["method"].lower() == "catalog.store.list"
            ]
            await calls.aclose()
            return keys, stores, companies, listed

    keys, stores, companies, listed = asyncio.run(scenario())
    assert [r.fields["xmlId"] for r in stores] == keys
    assert len({r.id for r in stores}) == 120
    assert len(listed) == 3  # 50 + 50 + 20: one call a page, none repeated
    assert [r.id for r in companies] == ["company:1", "company:2", "company:3"]
    assert companies[0].fields["TITLE"] == "ООО 0"


def test_prices_are_keyed_by_the_portal_product_and_price_type():
    spec = specs(14)["price"]
    row = {
        "id": A,
        "product_id": B,
        "price_type_id": C,
        "price": "120.50",
        "currency": "руб",
        "source": "onec",
        "deleted": False,
        "characteristic_id": None,
    }
    links = {"product": {B: "7"}, "price_type": {C: "3"}}
    expected = spec.expect(row, "11", links)
    assert expected.target_key == "7:3"
    assert expected.expected == {"price": 120.5, "currency": "RUB"}
    # Waiting for its product, a variant, a deletion: not the price's drift.
    assert spec.expect(row, None, {"product": {}, "price_type": {C: "3"}}) is None
    assert spec.expect({**row, "characteristic_id": D}, None, links) is None
    assert spec.expect({**row, "deleted": True}, None, links) is None

    def price(ident: int, product: int, ptype: int, amount: float) -> TargetRow:
        fields = {
            "id": ident,
            "productId": product,
            "catalogGroupId": ptype,
            "price": amount,
            "currency": "RUB",
            "_key": f"{product}:{ptype}",
        }
        return TargetRow(str(ident), fields)

    assert (
        classify_target(
            "price",
            "bitrix24",
            "_key",
            [expected],
            [price(11, 7, 3, 120.5)],
            orphan_key=spec.orphan,
        )
        == []
    )
    drifts = classify_target(
        "price",
        "bitrix24",
        "_key",
        [expected],
        [price(11, 7, 3, 99.0), price(12, 8, 3, 5.0)],
        orphan_key=spec.orphan,
    )
    assert kinds(drifts) == [("differs", A)]  # never an orphan: prices have no key of ours
    # The portal deleted it (with its price type): the crosswalk names a gone price.
    assert kinds(
        classify_target("price", "bitrix24", "_key", [expected], [], orphan_key=spec.orphan)
    ) == [("deleted", A)]
