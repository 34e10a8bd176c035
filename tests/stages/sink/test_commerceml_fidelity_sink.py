"""What the CommerceML exchange and 1С push bring ends where it belongs (real bridge, broker,
PostgreSQL and schema registry; the sinks as their workers build them):

* the price types of a pure "exchange with site" offers package are rows, so the prices that
  name them have their type (they used to wait for it forever: dependency_pending);
* ДоговорыКонтрагентов records become ``contract`` rows naming their counterparty, on
  norm.contract.
"""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from connectors.ingress.app import create_app
from stages.source_record import SourceRecord
from tests.connectors.ingress.test_commerceml_exchange import OneC
from tests.stages.normalize.test_onec_contract import OWNER, UT11
from tests.stages.sink.harness import dlq, run, sink_settings, sql
from tests.support.topics import count_records

PASSWORD = SecretStr("an-exchange-password-for-the-fidelity-test")
LAYOUTS = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"


@pytest.fixture
def s(settings, registry_url, tmp_path):
    made = sink_settings(settings, registry_url)
    cml = made.commerceml.model_copy(
        update={"work_dir": tmp_path, "password": PASSWORD, "use_zip": False}
    )
    return made.model_copy(update={"commerceml": cml})


def _batch(messages) -> list[SourceRecord]:
    return [
        SourceRecord(
            m.topic(), m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or [])
        )
        for m in messages
    ]


def test_offer_package_price_types_are_stored_for_their_prices(s, caplog):
    caplog.set_level(logging.INFO)
    data = (LAYOUTS / "cml204_offers.xml").read_bytes()
    with TestClient(create_app(s), raise_server_exceptions=False) as client:
        onec = OneC(client).login(s)
        onec.call("init")
        onec.upload("offers.xml", data, chunk=len(data))
        assert onec.import_("offers.xml").text == "success"
    types = count_records(s, "raw.onec.price_type", expect_at_least=2)
    prices = count_records(s, "raw.onec.price", expect_at_least=2)
    batch = _batch(types) + _batch(prices)

    async def scenario(sinks):
        return await sinks.entities.handle(batch)

    run(s, scenario)
    assert dlq(s, "dlq.normalize") == [] and dlq(s, "dlq.relay") == []
    stored = sql(
        s,
        'SELECT t.name, t.currency, t.includes_vat, p.currency FROM "price" p '
        'JOIN "price_type" t ON t.id = p.price_type_id ORDER BY t.name DESC',
    )
    assert stored == [
        ("Розничная", "RUB", True, "RUB"),
        ("Оптовая (дилерская)", "USD", False, "USD"),
    ]
    assert len(count_records(s, "norm.price_type", expect_at_least=2)) == 2


def test_a_contract_is_stored_naming_its_counterparty(s):
    async def scenario(sinks):
        return await sinks.entities.handle(
            [sinks.record("raw.onec.contract", UT11, UT11["Ref_Key"])]
        )

    run(s, scenario)
    assert dlq(s, "dlq.normalize") == []
    row = sql(
        s,
        'SELECT counterparty_id, number, kind FROM "contract" WHERE id = %s',
        UUID(UT11["Ref_Key"]),
    )
    assert row == [(UUID(OWNER), "15/2020", "СПокупателем")]
    assert len(count_records(s, "norm.contract", expect_at_least=1)) == 1


def test_a_catalog_product_keeps_its_full_name_and_barcode(s):
    from connectors.commerceml.document import records

    with (LAYOUTS / "cml207_import.xml").open("rb") as stream:
        (product,) = list(records(stream))

    async def scenario(sinks):
        return await sinks.products.handle(
            [sinks.record("raw.onec.product", product.value(), product.key)]
        )

    run(s, scenario)
    row = sql(s, "SELECT name, full_name, barcode FROM product WHERE id = %s", UUID(product.key))
    assert row == [
        (
            'Телевизор "JVC" 21 дюйм',
            'Телевизор цветной "JVC" AV-21, диагональ 21 дюйм',
            "4601234567893",
        )
    ]
    norm = count_records(s, "norm.product", expect_at_least=1)
    assert len(norm) == 1
