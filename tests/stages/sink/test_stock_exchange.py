"""Stock a CommerceML offers exchange brings ends in the ``stock`` table and on norm.stock
(design.md invariants 10 and 2: every topic the bridge writes has a reader; a record the
bridge acknowledges ends in PostgreSQL or a DLQ). Real bridge, broker, PostgreSQL and schema
registry: 1С's exchange protocol into the bridge, raw.onec.stock read back and handed to the
entity sink as its worker hands it over."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from connectors.ingress.app import create_app
from mmstream.models.stock import stock_id
from stages.source_record import SourceRecord
from tests.connectors.commerceml import samples
from tests.connectors.ingress.test_commerceml_exchange import OneC
from tests.stages.sink.harness import dlq, run, sink_settings, sql
from tests.support.topics import count_records

PASSWORD = SecretStr("an-exchange-password-for-the-stock-test")


@pytest.fixture
def s(settings, registry_url, tmp_path):
    made = sink_settings(settings, registry_url)
    cml = made.commerceml.model_copy(
        update={"work_dir": tmp_path, "password": PASSWORD, "use_zip": False}
    )
    return made.model_copy(update={"commerceml": cml})


def exchange_offers(s, data: bytes, caplog) -> int:
    """1С uploads and imports offers.xml; the number of stock records the bridge accepted."""
    caplog.set_level(logging.INFO)
    with TestClient(create_app(s), raise_server_exceptions=False) as client:
        onec = OneC(client).login(s)
        onec.call("init")
        onec.upload("offers.xml", data, chunk=len(data))
        assert onec.import_("offers.xml").text == "success"
    [imported] = [r for r in caplog.records if r.getMessage() == "commerceml file imported"]
    return imported.published["stock"]


def test_an_offers_exchange_ends_in_the_stock_table_and_on_norm_stock(s, caplog):
    accepted = exchange_offers(s, samples.offers_with_stock(), caplog)
    priced = samples.priced_offer_ids()
    assert accepted == 2 * len(priced)  # a total and one warehouse per priced offer

    raw = count_records(s, "raw.onec.stock", expect_at_least=accepted)
    assert len(raw) == accepted
    batch = [
        SourceRecord(
            m.topic(), m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or [])
        )
        for m in raw
    ]

    async def scenario(sinks):
        return await sinks.entities.handle(batch)

    run(s, scenario)
    stored = sql(s, 'SELECT count(*), count(DISTINCT id), count(warehouse_id) FROM "stock"')
    assert stored == [(accepted, accepted, len(priced))]
    # Every accepted record is a row, and none went to a DLQ: nothing accepted and lost.
    assert dlq(s, "dlq.normalize") == [] and dlq(s, "dlq.relay") == []
    # One record per stock row; a deleted offer's rows also get their tombstone.
    deleted = sql(s, 'SELECT count(*) FROM "stock" WHERE deleted')[0][0]
    assert deleted == 2 * len(set(samples.deleted_offer_ids()) & set(priced)) > 0
    norm = count_records(s, "norm.stock", expect_at_least=accepted + deleted)
    assert sum(m.value() is not None for m in norm) == accepted
    assert sum(m.value() is None for m in norm) == deleted

    # One row checked against the file: the first priced offer, on the declared warehouse.
    product, _, variant = priced[0].partition("#")
    row = sql(
        s,
        'SELECT quantity, warehouse_name, source FROM "stock" WHERE id = %s',
        stock_id(UUID(samples.WAREHOUSE), UUID(product), UUID(variant) if variant else None),
    )
    assert row == [(Decimal("0.5"), "Основной склад", "commerceml")]
    first = json.loads(raw[0].value())
    assert first["_source"] == "commerceml"


def test_a_stock_record_the_normalizer_refuses_is_dead_lettered_with_its_reason(s):
    """A record of the topic that is not stock (a site's non-GUID product id) is not lost
    either: it is on dlq.normalize with the reason, the good one beside it is stored."""
    good = {
        "_source": "commerceml",
        "product_id": "235ccc6d-ab81-11e4-944a-00155d020201",
        "characteristic_id": None,
        "offer_id": "235ccc6d-ab81-11e4-944a-00155d020201",
        "deleted": False,
        "warehouse_id": samples.WAREHOUSE,
        "warehouse_name": "Основной",
        "quantity": "3",
        "version": "v1",
    }
    bad = {**good, "product_id": "ORDER_DELIVERY", "offer_id": "ORDER_DELIVERY"}

    async def scenario(sinks):
        await sinks.entities.handle(
            [sinks.record("raw.onec.stock", good, "a"), sinks.record("raw.onec.stock", bad, "b")]
        )

    run(s, scenario)
    assert sql(s, 'SELECT quantity FROM "stock"') == [(Decimal(3),)]
    (entry,) = dlq(s, "dlq.normalize", expect=1)
    assert "product_id" in str(entry)
