"""Chaos: poison records at every stage (design.md invariant 9), with the real processes.

Each poison ends in its stage's DLQ with a reason, no worker exits, and a later good record
of the same entity (or the same partition) is stored:
- raw: bytes that are not JSON, produced straight to ``raw.onec.warehouse``;
- normalize: a ВидыЦен with ``"ПроцентСкидкиНаценки": 1e300`` through the bridge (202);
- merge: a warehouse the database refuses (a CHECK constraint stands in for any value a
  column cannot take once normalization let it through);
- relay: stored changes the relay cannot encode (outbox rows written as a faulty merge
  would), one on every partition of ``raw.onec.price_type``;
- egress: a product change Bitrix24 refuses permanently (400);
- enrichment: a Bitrix24 deal too large to become a Kafka record.
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest
from confluent_kafka import Producer

from mmstream.dlq.format import failure_headers
from mmstream.envelope import change_id
from tests.chaos.load import Laps, chaos_stack
from tests.support.processes import eventually
from tests.support.stack import onec_product
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

#: Poison records per stage where many can be offered at once, by chaos mode.
SIZES = {"short": 1, "quick": 3, "full": 10}
V1, V2 = "AAAAAQAAAAA=", "AAAAAgAAAAA="
REFUSED = "ЯД"  # the name the merge-stage CHECK constraint refuses


@pytest.fixture
def stack(pipeline):
    stack = chaos_stack(pipeline)
    yield stack
    stack.stop()


def warehouse(ref: str, version: str, name: str) -> dict:
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Code": "000000001",
        "Description": name,
        "Parent_Key": "00000000-0000-0000-0000-000000000000",
        "IsFolder": False,
    }


def price_type(ref: str, version: str, markup) -> dict:
    return {
        "Ref_Key": ref,
        "DataVersion": version,
        "DeletionMark": False,
        "Code": "000000002",
        "Description": "Розничная",
        "ПроцентСкидкиНаценки": markup,
    }


def poison_outbox(stack, partitions: int) -> list[str]:
    """One stored price-type change per partition that no Avro decimal(20, 4) can carry."""
    ids = []
    topic = stack.settings.topic("raw.onec.price_type")
    for p in range(partitions):
        ref = str(uuid.uuid4())
        payload = (
            f'{{"id": "{ref}", "source": "onec", "version": "v1", "name": "relay poison", '
            f'"deleted": false, "external_ids": {{}}, "markup_percent": 1e300, "revision": 1}}'
        )
        execute(
            stack,
            "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, "
            "source_partition, source_offset, payload) VALUES "
            "(%s, 'price_type', %s, 'upsert', 'v1', %s, %s, 0, %s)",
            change_id("price_type", ref, "v1"),
            ref,
            topic,
            p,
            payload,
        )
        ids.append(ref)
    return ids


def execute(stack, statement: str, *params) -> None:
    url = stack.settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


def dlq_by_key(stack, name: str) -> dict[str, dict[str, str]]:
    return {
        (m.key() or b"").decode(): failure_headers(m.headers())
        for m in count_records(stack.settings, name, quiet_s=1.0)
    }


def test_poison_at_every_stage_is_dead_lettered_and_the_stream_goes_on(
    stack, chaos_mode, chaos_report
):
    n = SIZES[chaos_mode]
    began = time.monotonic()
    laps = Laps()
    s = stack.settings
    execute(stack, f"ALTER TABLE warehouse ADD CONSTRAINT chaos_poison CHECK (name <> '{REFUSED}')")
    relay_poison = poison_outbox(stack, 6)
    huge_deal = 901
    # Every process at once (one after the other, each start added up on a busy machine);
    # nothing below reaches the pipeline before the poison is posted.
    stack.start_everything()
    laps("start")
    stack.put_entity("deal", huge_deal, {"TITLE": "огромная", "COMMENTS": "я" * 1_500_000})
    egress_product = onec_product(Description="Отказ портала")
    stack.inject_fault(
        method="catalog.product.add",
        status=400,
        error="",
        description="Field NAME is required",
        times=1,
        xml_id=egress_product["Ref_Key"],
    )

    # -- the poison ---------------------------------------------------------------------------
    raw_keys = [str(uuid.uuid4()) for _ in range(n)]
    producer = Producer({"bootstrap.servers": s.kafka.bootstrap_servers})
    for key in raw_keys:
        producer.produce(s.topic("raw.onec.warehouse"), b"\xff\xfe{not json", key.encode())
    producer.flush(30)
    normalize_keys = [str(uuid.uuid4()) for _ in range(n)]
    merge_keys = [str(uuid.uuid4()) for _ in range(n)]
    statuses = [
        stack.post_onec("ВидыЦен", price_type(k, V1, 1e300)).status_code for k in normalize_keys
    ]
    statuses += [
        stack.post_onec("Склады", warehouse(k, V1, REFUSED)).status_code for k in merge_keys
    ]
    statuses.append(stack.post_product(egress_product).status_code)
    stack.post_event("ONCRMDEALUPDATE", huge_deal)

    # -- later good records of the same entities ---------------------------------------------
    statuses += [stack.post_onec("Склады", warehouse(k, V1, "Склад")).status_code for k in raw_keys]
    statuses += [
        stack.post_onec("ВидыЦен", price_type(k, V2, 5)).status_code for k in normalize_keys
    ]
    statuses += [
        stack.post_onec("Склады", warehouse(k, V2, "Склад")).status_code for k in merge_keys
    ]
    relay_good = [str(uuid.uuid4()) for _ in range(n)]
    statuses += [stack.post_onec("ВидыЦен", price_type(k, V1, 7)).status_code for k in relay_good]
    assert set(statuses) == {202}, statuses
    laps("poison offered")

    def egress_dead():
        stack.assert_alive()
        return egress_product["Ref_Key"] in dlq_by_key(stack, "dlq.egress.bitrix24.product")

    eventually(egress_dead, 90, message="the refused product change in dlq.egress")
    # The product is fixed in 1С (a version that changes nothing publishes nothing).
    assert (
        stack.post_product(
            dict(egress_product, DataVersion=V2, Description="Отказ портала, исправлено")
        ).status_code
        == 202
    )
    eventually(
        lambda: stack.assert_alive() or "deal:901" in dlq_by_key(stack, "dlq.enrich.bitrix24"),
        90,
        message="the huge deal in dlq.enrich.bitrix24",
    )
    stack.put_entity("deal", huge_deal, {"TITLE": "обычная", "COMMENTS": ""})
    stack.post_event("ONCRMDEALUPDATE", huge_deal)

    # -- every good record stored (or at its target), every poison dead-lettered ----------------
    good_warehouses = raw_keys + merge_keys
    stack.wait_sql(
        "SELECT id::text FROM warehouse WHERE id::text = ANY(%s) AND name = 'Склад'",
        lambda r: len(r) == len(good_warehouses),
        120,
        good_warehouses,
    )
    stack.wait_sql(
        "SELECT id::text FROM price_type WHERE id::text = ANY(%s)",
        lambda r: len(r) == 2 * n,
        120,
        normalize_keys + relay_good,
    )
    stack.wait_sql(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL", lambda r: r == [(0,)], 60
    )  # nothing pending: no partition blocked

    def at_target():
        stack.assert_alive()
        return egress_product["Ref_Key"] in {p.get("xmlId") for p in stack.emulator_products()}

    eventually(at_target, 90, message="the later product change in Bitrix24")

    def enriched():
        stack.assert_alive()
        return any(
            m.key() == b"deal:901" and m.value() and json.loads(m.value())["TITLE"] == "обычная"
            for m in count_records(s, "raw.bitrix24.deal", quiet_s=0.5)
        )

    eventually(enriched, 90, message="the later deal fetched into raw.bitrix24.deal")
    laps("dead-lettered and the stream went on")

    normalize_dlq = dlq_by_key(stack, "dlq.normalize")
    relay_dlq = dlq_by_key(stack, "dlq.relay")
    reasons = {
        "raw": [normalize_dlq.get(k) for k in raw_keys],
        # Bounded at normalization; had it slipped through, the relay would have caught it.
        "normalize": [normalize_dlq.get(k) or relay_dlq.get(k) for k in normalize_keys],
        "merge": [normalize_dlq.get(k) for k in merge_keys],
        "relay": [relay_dlq.get(k) for k in relay_poison],
        "egress": [dlq_by_key(stack, "dlq.egress.bitrix24.product").get(egress_product["Ref_Key"])],
        "enrich": [dlq_by_key(stack, "dlq.enrich.bitrix24").get("deal:901")],
    }
    missing = {
        stage: sum(1 for f in found if not (f and f.get("error.message")))
        for stage, found in reasons.items()
    }
    dead_lettered = sum(len(found) for found in reasons.values()) - sum(missing.values())
    stack.assert_alive()
    poison = sum(len(found) for found in reasons.values())
    good = 2 * n + 2 * n + 1 + 1  # warehouses, price types, the product, the deal
    verdict = (
        not any(missing.values())
        and reasons["merge"][0]["stage"] == "merge"
        and reasons["relay"][0]["stage"] == "relay"
    )
    chaos_report.record(
        "poison at every stage",
        verdict=verdict,
        offered=poison + good,
        accepted=poison + good,
        stored=good,
        at_target=1,
        dead_lettered=dead_lettered,
        lost=sum(missing.values()),
        duplicated=0,
        seconds=time.monotonic() - began,
        notes=f"{n} poison per stage for raw/normalize/merge/relay(x6 partitions), 1 for "
        f"egress/enrichment; no worker exited; seconds per phase {laps.seconds}",
        phases=laps.seconds,
        missing=missing,
        stages={
            stage: sorted({(f or {}).get("stage", "-") for f in found})
            for stage, found in reasons.items()
        },
    )
    assert verdict, (missing, reasons, stack.logs())
