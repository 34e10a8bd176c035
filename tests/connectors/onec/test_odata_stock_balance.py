"""The OData poller reading ТоварыНаСкладах's Balance table from the 1С emulator onto the
real broker and PostgreSQL: a record per stock row, one more per changed balance, nothing
for an unchanged snapshot, a zero balance for a row 1С stops answering."""

from __future__ import annotations

import json
import uuid

from connectors.onec.objects import lookup
from mmstream.envelope import decode_headers
from mmstream.models.stock import stock_id
from tests.support.topics import count_records

STOCK = lookup("ТоварыНаСкладах")
REGISTER = STOCK.odata_name
ZERO = "00000000-0000-0000-0000-000000000000"


def recorder(*lines: tuple[str, str, float], kind: str = "Receipt") -> dict:
    """One recorder's RecordSet of movements (warehouse, product, quantity per line)."""
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
                "Склад_Key": w,
                "Номенклатура_Key": p,
                "Характеристика_Key": ZERO,
                "ВНаличии": q,
                "ВРезервеСоСклада": 0,
            }
            for n, (w, p, q) in enumerate(lines, 1)
        ],
    }


def stock_records(settings, expect: int) -> list[tuple[str, dict, dict]]:
    """(key, value, headers) of every record on raw.onec.stock."""
    return [
        (m.key().decode(), json.loads(m.value()), decode_headers(m.headers()))
        for m in count_records(settings, "raw.onec.stock", expect_at_least=expect)
    ]


def row_key(warehouse: str, product: str) -> str:
    return str(stock_id(uuid.UUID(warehouse), uuid.UUID(product), None))


def test_balances_are_published_once_per_change_and_a_vanished_row_as_zero(odata):
    w, p1, p2, p3 = (str(uuid.uuid4()) for _ in range(4))
    odata.write(
        REGISTER,
        recorder((w, p1, 10), (w, p2, 4), (w, p3, 1)),
        recorder((w, p1, 3), kind="Expense"),
    )
    first = odata.scan(STOCK.read_set)
    # page_size 2: three rows take two pages; every row once, as the table answers it.
    assert (first.complete, first.read, first.published, first.zeroed) == (True, 3, 3, 0)
    records = stock_records(odata.settings, 3)
    assert {k: v["ВНаличииBalance"] for k, v, _ in records} == {
        row_key(w, p1): 7,
        row_key(w, p2): 4,
        row_key(w, p3): 1,
    }
    key, value, headers = records[0]
    assert value["DataVersion"].startswith("h:") and "Period" not in value
    assert (headers["ce_source"], headers["ce_type"]) == (
        "/onec/odata",
        "ru.mastermobile.onec.stock.v1",
    )

    unchanged = odata.scan(STOCK.read_set)
    assert (unchanged.read, unchanged.unchanged, unchanged.published, unchanged.zeroed) == (
        3,
        3,
        0,
        0,
    )

    odata.write(REGISTER, recorder((w, p1, 2), kind="Expense"))  # a new document: 7 -> 5
    changed = odata.scan("ТоварыНаСкладах")  # the 1С name reads the same table
    assert (changed.published, changed.unchanged) == (1, 2)

    odata.write(REGISTER, recorder((w, p2, 4), kind="Expense"))  # p2 sold out: 1С drops the row
    zeroed = odata.scan(STOCK.read_set)
    assert (zeroed.read, zeroed.published, zeroed.zeroed, zeroed.deleted) == (2, 0, 1, 0)
    assert odata.scan(STOCK.read_set).zeroed == 0  # forgotten once published

    records = stock_records(odata.settings, 5)
    assert len(records) == 5
    tail = [
        (k, v.get("ВНаличииBalance"), v.get("_deleted"))
        for k, v, _ in records
        if k in (row_key(w, p1), row_key(w, p2))
    ]
    assert [(k, q) for k, q, _ in tail if k == row_key(w, p1)] == [
        (row_key(w, p1), 7),
        (row_key(w, p1), 5),
    ]
    assert [(q, gone) for k, q, gone in tail if k == row_key(w, p2)] == [(4, None), (0, None)]

    odata.write(REGISTER, recorder((w, p2, 6)))  # restocked: a new row again
    assert odata.scan(STOCK.read_set).published == 1
    # One partition per stock row: its records in order, the last the restocked balance.
    assert [
        v["ВНаличииBalance"] for k, v, _ in stock_records(odata.settings, 6) if k == row_key(w, p2)
    ] == [4, 0, 6]


def test_a_ut103_base_is_read_by_its_dimensions_and_zeroed_in_its_resource(odata):
    """УТ 10.3: ХарактеристикаНоменклатуры and Количество, from the objects map's layout."""
    w, p = str(uuid.uuid4()), str(uuid.uuid4())
    path = f"{REGISTER}/Balance(Dimensions='Склад,Номенклатура,ХарактеристикаНоменклатуры')"

    def movement(kind: str, quantity: float) -> dict:
        ref = str(uuid.uuid4())
        return {
            "Recorder": ref,
            "RecordSet": [
                {
                    "Recorder": ref,
                    "Period": "2026-12-01T10:00:00",
                    "LineNumber": "1",
                    "Active": True,
                    "RecordType": kind,
                    "Склад_Key": w,
                    "Номенклатура_Key": p,
                    "ХарактеристикаНоменклатуры_Key": ZERO,
                    "Количество": quantity,
                }
            ],
        }

    odata.write(REGISTER, movement("Receipt", 8))
    assert odata.scan(path).published == 1
    odata.write(REGISTER, movement("Expense", 8))
    assert odata.scan(path).zeroed == 1
    values = [v for k, v, _ in stock_records(odata.settings, 2)]
    assert [v["КоличествоBalance"] for v in values] == [8, 0]
    assert not any("ВНаличииBalance" in v for v in values)
    assert values[1]["ХарактеристикаНоменклатуры_Key"] == ZERO
