"""The OData poller against the 1С emulator, the real broker and PostgreSQL: every record
once, nothing for unchanged ones, one record per change or deletion, one leader per set."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from connectors.onec.odata import store
from connectors.onec.odata.errors import ODataServerError
from connectors.onec.validation import deletion_record
from mmstream.envelope import change_id, decode_headers
from tests.connectors.onec.conftest import PRODUCTS, product
from tests.support.stack import FIXTURES
from tests.support.topics import count_records

PRICES = "InformationRegister_ЦеныНоменклатуры"


def published(settings, entity: str = "product", expect: int = 0) -> list:
    return count_records(settings, f"raw.onec.{entity}", expect_at_least=expect)


def values(messages) -> list[dict]:
    return [json.loads(m.value()) for m in messages]


def sql(settings, query: str, *params) -> list[tuple]:
    url = settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def six_products(odata):
    """The captured product plus five written by a 1С user: six records, three pages of two."""
    odata.write(PRODUCTS, *(product(f"Товар {n}") for n in range(5)))
    assert len(odata.records()) == 6
    return odata


def test_initial_scan_publishes_every_record_once_and_a_second_scan_nothing(six_products):
    odata = six_products
    report = odata.scan()
    assert (report.led, report.complete, report.read, report.published) == (True, True, 6, 6)
    messages = published(odata.settings, expect=6)
    base = odata.records()
    assert sorted(m.key().decode() for m in messages) == sorted(base)
    for msg in messages:
        key, headers = msg.key().decode(), decode_headers(msg.headers())
        assert json.loads(msg.value()) == base[key]
        assert headers["ce_id"] == change_id("product", key, base[key]["DataVersion"])
        assert (headers["ce_source"], headers["ce_type"], headers["ce_subject"]) == (
            "/onec/odata",
            "ru.mastermobile.onec.product.v1",
            key,
        )
    again = odata.scan()
    assert (again.read, again.unchanged, again.published) == (6, 6, 0)
    assert len(published(odata.settings, expect=6)) == 6


def test_a_changed_record_publishes_one_record(six_products):
    odata = six_products
    odata.scan()
    (changed,) = odata.write(
        PRODUCTS, {**next(iter(odata.records().values())), "Description": "Мойка 2"}
    )
    report = odata.scan()
    assert (report.published, report.unchanged) == (1, 5)
    messages = published(odata.settings, expect=7)
    assert len(messages) == 7
    versions = [json.loads(m.value()) for m in messages if m.key().decode() == changed["Ref_Key"]]
    assert len(versions) == 2 and versions[-1] == changed  # one partition: in order


def test_a_deleted_record_publishes_one_deletion(six_products):
    odata = six_products
    odata.scan()
    victim = next(iter(odata.records().values()))
    odata.delete(PRODUCTS, {"Ref_Key": victim["Ref_Key"]})
    assert odata.scan(reconcile=False).deleted == 0  # found only when reconciling
    report = odata.scan(reconcile=True)
    assert (report.deleted, report.published) == (1, 0)
    assert odata.scan(reconcile=True).deleted == 0
    messages = published(odata.settings, expect=7)
    deletions = [m for m in messages if json.loads(m.value()).get("_deleted")]
    assert len(messages) == 7 and len(deletions) == 1
    (gone,) = deletions
    expected = deletion_record({"Ref_Key": victim["Ref_Key"]}, victim["DataVersion"])
    assert (gone.key().decode(), json.loads(gone.value())) == (victim["Ref_Key"], expected)
    assert decode_headers(gone.headers())["ce_id"] == change_id(
        "product", victim["Ref_Key"], expected["DataVersion"]
    )
    assert sql(
        odata.settings,
        "SELECT count(*) FROM onec_odata_seen WHERE record_key = %s",
        victim["Ref_Key"],
    ) == [(0,)]


def test_an_interrupted_scan_resumes_and_does_not_reconcile(six_products):
    odata = six_products
    odata.scan()
    victim = next(iter(odata.records().values()))
    odata.delete(PRODUCTS, {"Ref_Key": victim["Ref_Key"]})
    odata.fault(status=503, after=1)  # the second page fails
    with pytest.raises(ODataServerError):
        odata.scan(reconcile=True)
    assert sql(odata.settings, "SELECT scan_in_progress, scan_skip FROM onec_odata_cursor") == [
        (True, 2)
    ]
    assert len(published(odata.settings, expect=6)) == 6  # no deletion from a partial scan
    resumed = odata.scan(reconcile=True)
    assert (resumed.read, resumed.complete, resumed.deleted) == (3, True, 1)
    assert len(published(odata.settings, expect=7)) == 7


def test_an_entity_set_led_elsewhere_is_skipped(six_products):
    odata = six_products
    url = odata.settings.require_database_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as other_process:
        other_process.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))", (store._LOCK_CLASS, PRODUCTS)
        )
        report = odata.scan()
        assert (report.led, report.read, report.published) == (False, 0, 0)
        assert published(odata.settings) == []
    assert odata.scan().published == 6


def test_two_pollers_at_once_publish_once(six_products):
    odata = six_products
    odata.fault(delay_s=0.05, count=-1)  # slow pages keep both scans in flight together
    reports = asyncio.run(odata.scan_many([PRODUCTS, PRODUCTS]))
    assert sum(r.published for r in reports) == 6
    messages = published(odata.settings, expect=6)
    assert sorted(m.key().decode() for m in messages) == sorted(odata.records())


def test_prices_have_no_data_version_of_their_own(odata):
    rows = [
        {
            "Period": f"2024-0{m}-01T00:00:00",
            "Номенклатура_Key": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09",
            "Характеристика_Key": "00000000-0000-0000-0000-000000000000",
            "ВидЦены_Key": "2528e58f-e921-11ea-8591-000c29b45b09",
            "Цена": 100.0 * m,
            "Active": True,
        }
        for m in (1, 2)
    ]
    odata.write(PRICES, *rows)
    assert odata.scan(PRICES).published == 2
    assert odata.scan(PRICES).published == 0
    odata.write(PRICES, {**rows[1], "Цена": 250.0})
    assert odata.scan(PRICES).published == 1
    odata.delete(PRICES, {k: rows[0][k] for k in ("Period", "Номенклатура_Key", "ВидЦены_Key")})
    assert odata.scan(PRICES, reconcile=True).deleted == 1
    messages = published(odata.settings, "price", expect=4)
    docs = values(messages)
    assert all(d["DataVersion"].startswith("h:") for d in docs if not d.get("_deleted"))
    assert sorted(d.get("Цена", 0) for d in docs) == [0, 100.0, 200.0, 250.0]
    keys = [m.key().decode() for m in messages]
    assert len(set(keys)) == 2
    deletion = next(d for d in docs if d.get("_deleted"))
    assert deletion["Period"] == "2024-01-01T00:00:00" and deletion["DataVersion"].startswith(
        "deleted:h:"
    )


def test_invalid_records_are_not_published_nor_taken_for_deleted(odata):
    broken = product("")  # 1С let a user save an item without a name
    odata.write(PRODUCTS, broken)
    report = odata.scan(reconcile=True)
    assert (report.published, report.rejected, report.deleted) == (1, 1, 0)
    assert sql(
        odata.settings,
        "SELECT published_version FROM onec_odata_seen WHERE record_key = %s",
        broken["Ref_Key"],
    ) == [(None,)]
    (fixed,) = odata.write(PRODUCTS, {**broken, "Description": "Исправлено"})
    assert odata.scan(reconcile=True).published == 1
    assert [m.key().decode() for m in published(odata.settings, expect=2)][-1] == fixed["Ref_Key"]


def test_the_captured_shipments(odata):
    capture = json.loads(
        (FIXTURES / "onec_odata" / "bp30_Document_RealizatsiyaTovarovUslug.json").read_text("utf-8")
    )
    for doc in capture["value"]:
        odata.app.state.base.load("Document_РеализацияТоваровУслуг", doc)
    assert odata.scan("Document_РеализацияТоваровУслуг").published == 2
    messages = published(odata.settings, "shipment", expect=2)
    assert sorted(values(messages), key=lambda d: d["Ref_Key"]) == sorted(
        capture["value"], key=lambda d: d["Ref_Key"]
    )
