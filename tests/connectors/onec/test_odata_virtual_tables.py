"""Virtual tables of accumulation registers: the paths the OData client writes (parameters
quoted, no way out of a literal), the names the poller resolves to the Balance table, and
the emulator's Balance computed from movements as 1С computes it. Pure; no broker."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import unquote

import httpx
import pytest

from connectors.onec.objects import UT11, UT103, lookup
from connectors.onec.odata.poller import balance_layout, resolve, zero_balance
from connectors.onec.odata.query import entity_set_path, parse_virtual_table, virtual_table
from connectors.onec.validation import validate
from devstack.emulators.onec.app import ODATA_PREFIX, create_app
from devstack.emulators.onec.query import balance_rows
from mmstream.errors import ConfigurationError

STOCK = lookup("ТоварыНаСкладах")
REGISTER = "AccumulationRegister_ТоварыНаСкладах"
ZERO = "00000000-0000-0000-0000-000000000000"
W1, W2, P1, P2 = (str(uuid.uuid4()) for _ in range(4))
UT103_PATH = f"{REGISTER}/Balance(Dimensions='Склад,Номенклатура,ХарактеристикаНоменклатуры')"

# -- paths --------------------------------------------------------------------------------


def test_the_default_balance_path_keeps_its_syntax_and_escapes_the_rest():
    path = entity_set_path(STOCK.read_set)
    assert path.startswith("AccumulationRegister_%D0%A2")  # Cyrillic percent-encoded
    assert "/Balance(Dimensions='" in path and path.endswith("')")
    assert unquote(path) == STOCK.read_set
    assert entity_set_path("Catalog_Номенклатура") == entity_set_path("Catalog_Номенклатура")
    assert "/" not in entity_set_path("Catalog_Номенклатура")


def test_a_condition_cannot_leave_its_literal():
    hostile = "Склад_Key eq guid'x') or (1 eq 1&$top=1#/.."
    written = virtual_table(
        REGISTER, condition=hostile, dimensions=("Склад",), Period="2026-12-01T00:00:00"
    )
    assert written == (
        f"{REGISTER}/Balance(Period=datetime'2026-12-01T00:00:00',"
        "Condition='Склад_Key eq guid''x'') or (1 eq 1&$top=1#/..',"
        "Dimensions='Склад')"
    )
    back = parse_virtual_table(written)
    assert (back.condition, back.dimensions, back.moment("Period")) == (
        hostile,
        ("Склад",),
        "2026-12-01T00:00:00",
    )
    path = entity_set_path(written)
    # Nothing that ends the path or starts a query survives unescaped.
    assert not {"&", "?", "#", " ", "$"} & set(path)
    assert path.count("/") == 1
    assert unquote(path) == written


def test_turnover_tables_take_their_period_parameters():
    turnovers = virtual_table(
        REGISTER,
        "Turnovers",
        StartPeriod="2026-01-01T00:00:00",
        EndPeriod="2026-02-01T00:00:00",
        dimensions=["Номенклатура"],
    )
    assert parse_virtual_table(turnovers).moments == (
        ("StartPeriod", "2026-01-01T00:00:00"),
        ("EndPeriod", "2026-02-01T00:00:00"),
    )
    both = f"{REGISTER}/BalanceAndTurnovers(StartPeriod=datetime'2026-01-01T00:00:00')"
    assert parse_virtual_table(both).table == "BalanceAndTurnovers"
    assert parse_virtual_table(f"{REGISTER}/Balance").text == f"{REGISTER}/Balance()"
    assert parse_virtual_table("Catalog_Номенклатура") is None


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("Catalog_Номенклатура/Balance()", "AccumulationRegister_"),
        (f"{REGISTER}/Drop()", "not a virtual table"),
        (f"{REGISTER}/Balance(Period='2026-12-01')", "no string parameter Period"),
        (f"{REGISTER}/Balance(StartPeriod=datetime'2026-12-01T00:00:00')", "no datetime parameter"),
        (f"{REGISTER}/Turnovers(Period=datetime'2026-12-01T00:00:00')", "no datetime parameter"),
        (f"{REGISTER}/Balance(Period=datetime'2026-13-01T00:00:00')", "calendar date"),
        (f"{REGISTER}/Balance(Period=datetime'вчера')", "expected datetime"),
        (f"{REGISTER}/Balance(Dimensions='Склад;DROP')", "Dimensions"),
        (f"{REGISTER}/Balance(Condition='a'), Dimensions='b')", "cannot read"),
        (f"{REGISTER}/Balance(Condition='a\nb')", "control characters"),
        (f"{REGISTER}/Balance(Dimensions='a',Dimensions='b')", "twice"),
        (f"{REGISTER}/Balance(Dimensions='a',)", "comma"),
        (f"{REGISTER}/Balance(Dimensions='a')?$top=1", "not an OData"),
        ("../Catalog_Номенклатура", "not an OData"),
        (f"{REGISTER}/Balance()/x", "not an OData"),
    ],
)
def test_what_is_not_a_virtual_table_is_refused(path, problem):
    with pytest.raises(ValueError, match=problem):
        entity_set_path(path)


# -- what the poller reads ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["ТоварыНаСкладах", REGISTER, f"{REGISTER}_RecordType", STOCK.read_set, f" {STOCK.read_set} "],
)
def test_every_name_of_the_register_reads_its_balance_table(name):
    assert resolve(name) == (STOCK, STOCK.read_set)


def test_a_ut103_base_is_read_by_its_own_dimensions_and_resources():
    obj, name = resolve(UT103_PATH)
    layout = balance_layout(obj, name)
    assert (layout.configuration, layout.resources) == (UT103, ("Количество",))
    assert layout.scan_order == "Склад_Key,Номенклатура_Key,ХарактеристикаНоменклатуры_Key"
    assert balance_layout(STOCK, STOCK.read_set).configuration == UT11
    ident = {"Склад_Key": W1, "Номенклатура_Key": P1, "ХарактеристикаНоменклатуры_Key": ZERO}
    zero = zero_balance(layout, ident)
    assert zero["КоличествоBalance"] == 0 and "ВНаличииBalance" not in zero
    record = validate(STOCK, zero)
    assert (record.version, record.deleted) == (zero["DataVersion"], False)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (f"{REGISTER}/Turnovers(Dimensions='Склад')", "holds balances"),
        (f"{REGISTER}/Balance()", "dimensions a stock row is kept by"),
        (f"{REGISTER}/Balance(Dimensions='Склад,Номенклатура,Характеристика,Серия')", "kept by"),
        ("Catalog_Номенклатура/Balance()", "AccumulationRegister_"),
        ("AccumulationRegister_Продажи/Balance()", "not a 1С object"),
    ],
)
def test_a_virtual_table_stock_cannot_be_kept_by_is_a_configuration_error(name, problem):
    with pytest.raises(ConfigurationError, match=problem):
        resolve(name)


# -- the emulator's Balance -----------------------------------------------------------------


def recorder(*lines: dict, kind: str = "Receipt", at: str = "2026-12-01T10:00:00") -> dict:
    """A RecordSet of the register's entity set, as 1С answers it: one recorder's movements."""
    ref = str(uuid.uuid4())
    return {
        "Recorder": ref,
        "Recorder_Type": "StandardODATA.Document_ПриобретениеТоваровУслуг",
        "RecordSet": [
            {
                "Recorder": ref,
                "Period": at,
                "LineNumber": str(n),
                "Active": True,
                "RecordType": kind,
                **line,
            }
            for n, line in enumerate(lines, 1)
        ],
    }


def line(warehouse: str, product: str, quantity: float, **extra) -> dict:
    return {
        "Склад_Key": warehouse,
        "Номенклатура_Key": product,
        "Характеристика_Key": ZERO,
        "ВНаличии": quantity,
        "ВРезервеСоСклада": 0,
        **extra,
    }


UT11_RESOURCES = ("ВНаличии", "ВРезервеСоСклада", "Количество")
DIMS = ("Склад", "Номенклатура", "Характеристика")


def by_product(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["Склад_Key"], r["Номенклатура_Key"]): r["ВНаличииBalance"] for r in rows}


def test_receipts_add_expenses_subtract_and_zero_rows_are_left_out():
    records = [
        recorder(line(W1, P1, 10), line(W1, P2, 4), line(W2, P1, 1.1)),
        recorder(
            line(W1, P1, 3),
            line(W1, P2, 4),
            line(W2, P1, 0.2),
            kind="Expense",
            at="2026-12-02T10:00:00",
        ),
        recorder(line(W2, P1, 0.1)),
    ]
    rows = balance_rows(records, UT11_RESOURCES, dimensions=DIMS)
    assert by_product(rows) == {(W1, P1): 7, (W2, P1): 1.0}  # W1/P2 went to zero: no row
    assert set(rows[0]) == {
        "Склад_Key",
        "Номенклатура_Key",
        "Характеристика_Key",
        "ВНаличииBalance",
        "ВРезервеСоСкладаBalance",
    }
    # The balance at the beginning of a moment leaves out that moment's movements and later.
    before = balance_rows(records, UT11_RESOURCES, dimensions=DIMS, period="2026-12-02T10:00:00")
    assert by_product(before) == {(W1, P1): 10, (W1, P2): 4, (W2, P1): 1.2}
    only = balance_rows(
        records, UT11_RESOURCES, dimensions=DIMS, condition=f"Склад_Key eq guid'{W2}'"
    )
    assert by_product(only) == {(W2, P1): 1.0}


def test_inactive_movements_do_not_count_and_dimensions_collapse_the_rest():
    series = [str(uuid.uuid4()) for _ in range(2)]
    cancelled = recorder(line(W1, P1, 100))
    cancelled["RecordSet"][0]["Active"] = False
    records = [
        recorder(line(W1, P1, 2, Серия_Key=series[0]), line(W1, P1, 3, Серия_Key=series[1])),
        cancelled,
    ]
    assert by_product(balance_rows(records, UT11_RESOURCES, dimensions=DIMS)) == {(W1, P1): 5}
    # Without Dimensions: a row per every dimension the movements carry (here the series).
    assert sorted(r["ВНаличииBalance"] for r in balance_rows(records, UT11_RESOURCES)) == [2, 3]


def test_a_ut103_register_balances_its_own_resource_and_seeded_balances_count():
    ut103 = {
        "Recorder": str(uuid.uuid4()),
        "LineNumber": "1",
        "Period": "2026-12-01T10:00:00",
        "Active": True,
        "RecordType": "Receipt",
        "Склад_Key": W1,
        "Номенклатура_Key": P1,
        "ХарактеристикаНоменклатуры_Key": ZERO,
        "Количество": 8,
    }
    opening = {
        "Склад_Key": W1,
        "Номенклатура_Key": P1,
        "ХарактеристикаНоменклатуры_Key": ZERO,
        "КоличествоBalance": 2,
    }
    layout = STOCK.balance_layout(UT103)
    [row] = balance_rows([ut103, opening], UT11_RESOURCES, dimensions=layout.dimensions)
    assert row == {
        "Склад_Key": W1,
        "Номенклатура_Key": P1,
        "ХарактеристикаНоменклатуры_Key": ZERO,
        "КоличествоBalance": 10,
    }


def get(app, path: str) -> httpx.Response:
    async def call():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://1c.test"
        ) as client:
            return await client.get(path)

    return asyncio.run(call())


def test_the_emulator_serves_the_balance_table_of_what_was_written():
    app = create_app()
    moves = [recorder(line(W1, P1, 5), line(W1, P2, 1)), recorder(line(W1, P1, 2), kind="Expense")]

    async def write():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://1c.test"
        ) as client:
            return await client.put(f"/_emulator/odata/{REGISTER}", json=moves)

    assert asyncio.run(write()).status_code == 200
    # The movements set answers the RecordSets, as 1С does.
    listed = get(app, f"{ODATA_PREFIX}{entity_set_path(REGISTER)}?$format=json").json()["value"]
    assert len(listed) == 2 and all("RecordSet" in r for r in listed)
    path = entity_set_path(STOCK.read_set)
    resp = get(app, f"{ODATA_PREFIX}{path}?$format=json&$orderby=Номенклатура_Key&$top=10")
    assert resp.status_code == 200, resp.text
    assert resp.json()["odata.metadata"].endswith(f"#{REGISTER}_Balance")
    assert by_product(resp.json()["value"]) == {(W1, P1): 3, (W1, P2): 1}
    one = get(app, f"{ODATA_PREFIX}{path}?$format=json&$filter=Номенклатура_Key eq guid'{P2}'")
    assert by_product(one.json()["value"]) == {(W1, P2): 1}
    bad = get(app, f"{ODATA_PREFIX}{entity_set_path(REGISTER)}/Turnovers()?$format=json")
    assert bad.status_code == 400 and "Balance table only" in bad.text
    refused = get(app, f"{ODATA_PREFIX}{REGISTER}/Balance(Period='x')?$format=json")
    assert refused.status_code == 400 and refused.json()["odata.error"]["code"] == "-1"
    missing = get(app, f"{ODATA_PREFIX}AccumulationRegister_Продажи/Balance()?$format=json")
    assert missing.status_code == 404
