"""1С ДоговорыКонтрагентов (OData ``Catalog_ДоговорыКонтрагентов`` / push) -> the contract
entity naming its counterparty."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from mmstream.models.contract import CounterpartyContract
from stages.normalize.oddities import Unnormalizable
from stages.normalize.registry import Context, normalizers

CTX = Context()
OWNER = "4c2b6a51-1d7e-11e8-80c4-00155d000d01"
# As 1С's standard OData interface answers for УТ 11 (ДоговорыКонтрагентов).
UT11 = {
    "Ref_Key": "9a4f0f10-2b3c-11ea-80c9-00155d000d02",
    "DataVersion": "AAAAFgAAAAA=",
    "DeletionMark": False,
    "Owner_Key": OWNER,
    "IsFolder": False,
    "Parent_Key": "00000000-0000-0000-0000-000000000000",
    "Code": "000000012",
    "Description": "Договор поставки № 15/2020",
    "НомерДоговора": "15/2020",
    "ДатаДоговора": "2020-01-15T00:00:00",
    "ДатаОкончанияДействия": "0001-01-01T00:00:00",
    "ВидДоговора": "СПокупателем",
    "Организация_Key": "4c2b6a50-1d7e-11e8-80c4-00155d000d01",
    "Партнер_Key": "4c2b6a52-1d7e-11e8-80c4-00155d000d01",
    "ВалютаВзаиморасчетов_Key": "f1a17773-5488-11e6-80c1-00155d000a0b",
    "Комментарий": "",
    "Predefined": False,
    "PredefinedDataName": "",
}
# УТ 10.3 names: Номер/Дата, СрокДействия.
UT103 = {
    "Ref_Key": "9a4f0f11-2b3c-11ea-80c9-00155d000d02",
    "DataVersion": "AAAAAQAAAAA=",
    "DeletionMark": True,
    "Owner_Key": OWNER,
    "Code": "00003",
    "Description": "Основной договор",
    "Номер": "7",
    "Дата": "2012-05-02T00:00:00",
    "СрокДействия": "2013-05-02T00:00:00",
    "ВидДоговора": "СПоставщиком",
    "ВалютаВзаиморасчетов_Key": "f1a17773-5488-11e6-80c1-00155d000a0b",
}


def _one(record: dict) -> CounterpartyContract:
    (contract,) = normalizers()["raw.onec.contract"](record, {}, CTX)
    return contract


def test_an_ut11_contract_names_its_counterparty():
    c = _one(UT11)
    assert (c.id, c.counterparty_id, c.source, c.version) == (
        UUID(UT11["Ref_Key"]),
        UUID(OWNER),
        "onec",
        "AAAAFgAAAAA=",
    )
    assert (c.number, c.name, c.signed_on, c.valid_until, c.kind) == (
        "15/2020",
        "Договор поставки № 15/2020",
        date(2020, 1, 15),
        None,
        "СПокупателем",
    )
    assert c.organization_id == UUID(UT11["Организация_Key"])
    assert c.currency_id == UUID(UT11["ВалютаВзаиморасчетов_Key"])
    assert c.partner_id == UUID(UT11["Партнер_Key"]) and c.deleted is False


def test_an_ut103_contract_and_its_deletion_mark():
    c = _one(UT103)
    assert (c.number, c.signed_on, c.valid_until, c.kind, c.deleted) == (
        "7",
        date(2012, 5, 2),
        date(2013, 5, 2),
        "СПоставщиком",
        True,
    )


def test_without_a_number_the_code_is_the_number():
    record = {k: v for k, v in UT11.items() if k != "НомерДоговора"}
    assert _one(record).number == "000000012"


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"Ref_Key": None}, "Ref_Key"),
        ({"DataVersion": ""}, "DataVersion"),
        ({"ДатаДоговора": "15.01.2020"}, "ДатаДоговора"),
        ({"Owner_Key": "not-a-guid"}, "Owner_Key"),
    ],
)
def test_records_that_cannot_be_a_contract_are_refused(changes, reason):
    with pytest.raises(Unnormalizable, match=reason):
        _one({**UT11, **changes})
