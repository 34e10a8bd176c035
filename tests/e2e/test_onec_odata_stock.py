"""Stock read from 1С's OData Balance table into PostgreSQL, end to end: the OData poller
reads ``AccumulationRegister_ТоварыНаСкладах/Balance(…)`` of the 1С emulator (balances
computed from the movements a user's documents wrote), publishes to the real broker, and
the sink workers (real processes) normalize and store the stock rows. A new movement
updates its row once; an unchanged poll writes nothing new; a row sold out reads 0."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from connectors.onec.objects import lookup
from mmstream.models.stock import stock_id
from tests.connectors.onec.conftest import BASE, OData
from tests.support.topics import count_records

pytestmark = pytest.mark.e2e

STOCK = lookup("ТоварыНаСкладах")
ZERO = "00000000-0000-0000-0000-000000000000"
W, P1, P2 = (str(uuid.uuid4()) for _ in range(3))
ROW1, ROW2 = (str(stock_id(uuid.UUID(W), uuid.UUID(p), None)) for p in (P1, P2))


def recorder(*lines: tuple[str, float], kind: str = "Receipt") -> dict:
    """A document's movements of ТоварыНаСкладах (УТ 11), as the register's set holds them."""
    ref = str(uuid.uuid4())
    return {
        "Recorder": ref,
        "RecordSet": [
            {
                "Recorder": ref,
                "Period": "2026-12-01T10:00:00",
                "LineNumber": str(n),
                "Active": True,
                "RecordType": kind,
                "Склад_Key": W,
                "Номенклатура_Key": product,
                "Характеристика_Key": ZERO,
                "ВНаличии": quantity,
                "ВРезервеСоСклада": 0,
            }
            for n, (product, quantity) in enumerate(lines, 1)
        ],
    }


def test_the_balance_table_lands_in_postgres_and_changes_once_per_movement(pipeline):
    settings = pipeline.settings.model_copy(
        update={
            "odata": pipeline.settings.odata.model_copy(
                update={"base_url": BASE, "username": "odata", "password": SecretStr("secret")}
            )
        }
    )
    onec = OData(settings)
    pipeline.start_sink()
    pipeline.start_entity_sink()
    onec.write(STOCK.odata_name, recorder((P1, 10), (P2, 3)), recorder((P1, 4), kind="Expense"))

    assert onec.scan(STOCK.read_set).published == 2
    pipeline.wait_sql(
        "SELECT id::text, quantity, revision FROM stock ORDER BY quantity",
        lambda rows: rows == [(ROW2, 3, 1), (ROW1, 6, 1)],
    )
    as_of = pipeline.sql("SELECT as_of FROM stock WHERE id = %s", ROW1)[0][0]
    assert as_of is not None  # the moment the poller took the balance

    onec.write(STOCK.odata_name, recorder((P1, 1), kind="Expense"))  # a sale: 6 -> 5
    assert onec.scan(STOCK.read_set).published == 1
    pipeline.wait_sql(
        "SELECT quantity, revision FROM stock WHERE id = %s",
        lambda rows: rows == [(5, 2)],
        60,
        ROW1,
    )
    versions = pipeline.sql("SELECT count(*) FROM source_version WHERE entity = 'stock'")

    unchanged = onec.scan(STOCK.read_set)
    assert (unchanged.read, unchanged.published) == (2, 0)
    onec.write(STOCK.odata_name, recorder((P2, 3), kind="Expense"))  # P2 sold out
    assert onec.scan(STOCK.read_set).zeroed == 1
    pipeline.wait_sql(
        "SELECT quantity, deleted FROM stock WHERE id = %s",
        lambda rows: rows == [(0, False)],
        60,
        ROW2,
    )
    # Everything the poller published, and nothing more: 2 + 1 + the zero balance. The
    # unchanged poll added no record, row 1 was written twice and row 2 twice.
    assert len(count_records(settings, "raw.onec.stock", expect_at_least=4)) == 4
    assert pipeline.sql("SELECT id::text, revision FROM stock ORDER BY id") == sorted(
        [(ROW1, 2), (ROW2, 2)]
    )
    assert pipeline.sql("SELECT count(*) FROM source_version WHERE entity = 'stock'") == [
        (versions[0][0] + 1,)
    ]
