"""Reconcile of the operational records: delivery tasks against Bitrix24, courier documents
and cash documents against 1С (stages/reconcile/onec.py) — the pure expectations and
classification, and the task listing through the emulator in-process."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from stages.reconcile import onec as docs
from stages.reconcile.bitrix24 import delivery_task_spec, list_family
from stages.reconcile.drift import classify_target

A, B, C, D, E, F = (str(uuid.UUID(int=i)) for i in range(1, 7))
SETS = {
    "order": "Document_ЗаказКлиента",
    "shipment": "Document_РеализацияТоваровУслуг",
    "return": "Document_ВозвратТоваровОтКлиента",
}


def kinds(drifts) -> list[tuple[str, str]]:
    return sorted((d.kind, d.canonical_id) for d in drifts)


def order(ident: str, **over) -> dict:
    return {
        "id": ident,
        "external_ids": {"bitrix24": "deal:7"},
        "stage": "C3:WON",
        "status": "new",
        "deleted": False,
        **over,
    }


def test_courier_instant_orders_each_drift_once():
    spec = docs.specs(SETS, "order")["instant_order"]
    rows = [
        order(
            A,
            status="recorded",
            onec_document_id=A,
            onec_document_kind="Document_ЗаказКлиента",
            onec_number="0001",
            onec_posted=True,
        ),  # in step
        order(
            B, status="recorded", onec_document_id=B, onec_number="0002", onec_posted=True
        ),  # unposted in 1С
        order(C, status="recorded"),  # deleted in 1С
        order(D),  # won, never written
        order(E),  # written, answer lost
        order(F, stage="C3:NEW"),  # still open: not judged
        {**order(str(uuid.uuid4())), "external_ids": {}},  # not a courier deal
    ]
    expected = [e for r in rows if (e := spec.expect(r)) is not None]
    assert [e.id for e in expected] == [A, B, C, D, E]
    assert {e.entity_set for e in expected} == {"Document_ЗаказКлиента"}
    found = {
        A: {"Ref_Key": A, "Number": "0001", "Posted": True},
        B: {"Ref_Key": B, "Number": "0002", "Posted": False},
        E: {"Ref_Key": E.upper(), "Number": "0005", "Posted": True},
    }
    drifts = docs.classify("instant_order", expected, found)
    assert kinds(drifts) == sorted([("differs", B), ("deleted", C), ("missing", D), ("differs", E)])
    by_id = {d.canonical_id: d for d in drifts}
    assert by_id[B].fields == {"Posted": {"ours": True, "theirs": False}}
    assert by_id[E].fields == {"status": {"ours": "new", "theirs": "recorded"}}
    assert spec.repairs == {"missing": "republish", "differs": "result", "deleted": "unresolved"}
    # Marked for deletion counts as deleted.
    marked = docs.classify("instant_order", expected[:1], {A: {**found[A], "DeletionMark": True}})
    assert kinds(marked) == [("deleted", A)]


def test_returns_and_cash_documents():
    specs = docs.specs(SETS, "shipment")
    ret = specs["return"]
    recorded = {
        "id": A,
        "external_ids": {"bitrix24": "deal:3"},
        "courier_stage": "C5:WON",
        "status": "recorded",
        "number": "В-1",
        "posted": True,
    }
    born_in_onec = {"id": B, "external_ids": {"onec": B}, "status": "new", "source": "onec"}
    assert ret.expect(born_in_onec) is None
    got = ret.expect(recorded)
    assert (got.entity_set, got.fields) == (
        "Document_ВозвратТоваровОтКлиента",
        {"Number": "В-1", "Posted": True},
    )
    cash = specs["cash_receipt"]
    rows = [
        {
            "id": C,
            "source": "onec",
            "posted": True,
            "number": "ПКО-1",
            "amount": 1500.0,
            "version": "v1",
        },
        {
            "id": D,
            "source": "onec",
            "posted": False,
            "number": "ПКО-2",
            "amount": 10,
            "version": "v2",
        },
        {
            "id": E,
            "source": "onec",
            "posted": False,
            "number": "ПКО-3",
            "amount": 1,
            "version": "v3",
        },
        {"id": F, "source": "onec", "deleted": True, "version": "v4"},
    ]
    expected = [e for r in rows if (e := cash.expect(r)) is not None]
    assert [e.id for e in expected] == [C, D, E]
    found = {
        C: {"Ref_Key": C, "Posted": True, "Number": "ПКО-1", "СуммаДокумента": 1500},
        D: {"Ref_Key": D, "Posted": True, "Number": "ПКО-2", "СуммаДокумента": 10},
    }
    drifts = docs.classify("cash_receipt", expected, found)
    assert kinds(drifts) == sorted([("differs", D), ("deleted", E)])
    assert cash.repairs == {"differs": "reread", "deleted": "reread"}
    assert expected[2].version == "v3"  # the deletion record names the last version


def test_key_query_reads_in_chunks():
    refs = [str(uuid.uuid4()) for _ in range(docs.KEYS_PER_QUERY + 3)]
    seen: list[tuple[str, str, int]] = []

    class OData:
        async def query(self, entity_set, *, filter, top):
            seen.append((entity_set, filter, top))
            return [{"Ref_Key": r.upper()} for r in refs if f"guid'{r}'" in filter]

    found = asyncio.run(docs.read_documents(OData(), "Document_X", refs))
    assert set(found) == set(refs)
    assert [top for _, _, top in seen] == [docs.KEYS_PER_QUERY, 3]
    assert seen[0][1].count(" or ") == docs.KEYS_PER_QUERY - 1


def test_delivery_tasks_against_the_portal_listing():
    """A delivery task deleted in the portal, one edited there and one in step, listed
    through the emulator's tasks.task.list page by id."""
    from connectors.bitrix24.client import Bitrix24Client
    from devstack.emulators.bitrix24 import create_app
    from mmstream.settings import Bitrix24Settings

    base, hook = "http://portal.test", f"/rest/7/{uuid.uuid4().hex}/"
    app = create_app(webhook_path=hook, rate_per_s=1000.0, burst=1000)
    spec = delivery_task_spec()

    def task(ident: str, number: str) -> dict:
        return {
            "id": ident,
            "number": number,
            "delivery_address": "Москва",
            "deleted": False,
            "writers": ["onec", "bitrix24"],
            "source": "bitrix24",
        }

    rows = [
        task(A, "1"),
        task(B, "2"),
        task(C, "3"),
        {**task(D, "4"), "writers": ["bitrix24"]},
    ]  # the courier's own: not judged

    async def scenario():
        client = Bitrix24Client(
            Bitrix24Settings(webhook_url=base + hook, rate_per_s=1e6, burst=1000),
            transport=httpx.ASGITransport(app=app),
        )
        async with client:
            ids = {}
            for row in rows[:3]:
                exp = spec.expect(row, None, {})
                added = await client.call(
                    "tasks.task.add",
                    {
                        "fields": {
                            "TITLE": exp.expected["title"],
                            "DESCRIPTION": exp.expected["description"],
                            "XML_ID": row["id"],
                            "RESPONSIBLE_ID": 1,
                        }
                    },
                )
                ids[row["id"]] = f"task:{added['task']['id']}"
            await client.call(
                "tasks.task.update",
                {"taskId": int(ids[B][5:]), "fields": {"TITLE": "Переименовал"}},
            )
            manager = await client.call(
                "tasks.task.add", {"fields": {"TITLE": "Своя задача", "RESPONSIBLE_ID": 1}}
            )
            listing = await list_family(client, spec.families[0], page_size=2)
            return ids, listing, manager

    ids, listing, manager = asyncio.run(scenario())
    assert len(listing) == 4 and f"task:{manager['task']['id']}" in {r.id for r in listing}
    gone = ids.pop(C)
    listing = [r for r in listing if r.id != gone]  # deleted in the portal
    canonical = [c for row in rows if (c := spec.expect(row, ids.get(row["id"], gone), {}))]
    drifts = classify_target("delivery_task", "bitrix24", spec.key_field, canonical, listing)
    assert kinds(drifts) == sorted([("differs", B), ("deleted", C)])
    (differs,) = [d for d in drifts if d.kind == "differs"]
    assert differs.fields["title"]["theirs"] == "Переименовал"
    deleted_row = spec.expect({**rows[0], "deleted": True}, ids[A], {})
    assert deleted_row.expected == {"status": "6"} and not deleted_row.present


def test_a_reconcile_repair_of_a_courier_touched_task_is_written(db_url):
    """The egress writes only 1С's versions of a delivery task (the courier's are not echoed
    back); a reconcile repair re-states the whole row, so it is written whoever wrote last."""
    from stages.outbox.restate import REPAIR_MARK
    from tests.stages.egress.test_deliveries import act, calls, change, delivery

    async def scenario(action, xwalk, admin):
        first = await action.apply(change(delivery()), xwalk)
        (await admin.delete(f"/_emulator/entities/task/{first.split(':')[1]}")).raise_for_status()
        courier = await action.apply(change(delivery(source="bitrix24")), xwalk)
        repaired = await action.apply(
            change(delivery(source="bitrix24", **{REPAIR_MARK: "run-1"})), xwalk
        )
        return first, courier, repaired, await calls(admin, "tasks.task.add")

    first, courier, repaired, adds = act(db_url, scenario)
    assert courier is None
    assert repaired not in (None, first) and len(adds) == 2


def test_courier_deals_show_the_status_and_number_we_wrote():
    from stages.reconcile.bitrix24 import courier_deal_spec
    from stages.reconcile.drift import TargetRow

    spec = courier_deal_spec(
        "instant_order", 3, status_field="UF_CRM_MM_STATUS", document_field="UF_CRM_MM_ONEC_NUMBER"
    )
    rows = [
        order(A, status="recorded", onec_number="0001"),  # in step
        order(
            B, status="recorded", onec_number="0002", external_ids={"bitrix24": "deal:8"}
        ),  # edited in the portal
        order(C, status="recorded", external_ids={"bitrix24": "deal:9"}),  # deal deleted
        order(D),
    ]  # nothing written yet
    canonical = [c for r in rows if (c := spec.expect(r, None, {})) is not None]
    assert [c.linked for c in canonical] == ["deal:7", "deal:8", "deal:9"]
    listing = [
        TargetRow(
            "deal:7", {"ID": "7", "UF_CRM_MM_STATUS": "recorded", "UF_CRM_MM_ONEC_NUMBER": "0001"}
        ),
        TargetRow(
            "deal:8",
            {"ID": "8", "UF_CRM_MM_STATUS": "Отменён менеджером", "UF_CRM_MM_ONEC_NUMBER": "0002"},
        ),
        TargetRow("deal:10", {"ID": "10", "ORIGIN_ID": E}),
    ]  # someone else's deal
    drifts = classify_target(
        "instant_order",
        "bitrix24",
        spec.key_field,
        canonical,
        listing,
        keyless_is_ours=spec.keyless_is_ours,
        orphan_key=spec.orphan,
    )
    assert kinds(drifts) == sorted([("differs", B), ("deleted", C)])
    assert "deleted" in spec.unrepairable and spec.families[0].base_filter == {"CATEGORY_ID": 3}


def test_a_reconcile_repair_of_a_deal_status_is_written_whoever_wrote_last():
    import types

    from mmstream.settings import Settings
    from stages.egress.courier_documents import InstantOrderStatus
    from stages.egress.delivery import Change
    from stages.outbox.restate import REPAIR_MARK

    class Portal:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict]] = []

        async def call(self, method, params):
            self.calls.append((method, params))
            return True

    portal = Portal()
    action = InstantOrderStatus(types.SimpleNamespace(bitrix24=portal, settings=Settings()))
    row = order(A, status="recorded", onec_number="0001", source="bitrix24")

    def apply(payload):
        return asyncio.run(
            action.apply(Change("instant_order", A, payload, "upsert", 1, "e"), None)
        )

    assert apply(row) is None and portal.calls == []  # the courier's own change: not echoed
    assert apply({**row, REPAIR_MARK: "run-1"}) == "deal:7"
    ((method, params),) = portal.calls
    assert method == "crm.deal.update" and params["fields"]["UF_CRM_MM_STATUS"] == "recorded"
