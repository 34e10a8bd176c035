"""1С Склады -> Warehouse."""

from __future__ import annotations

from uuid import UUID

import pytest

from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_warehouse import normalize
from stages.normalize.registry import Context, normalizers

CTX = Context()
EMPTY = "00000000-0000-0000-0000-000000000000"


def warehouse(ref: str, **changes) -> dict:
    """A УТ 11 Catalog_Склады item."""
    record = {
        "Ref_Key": ref,
        "DataVersion": "AAAAAwAAAAA=",
        "DeletionMark": False,
        "Parent_Key": EMPTY,
        "IsFolder": False,
        "Code": "000000001",
        "Description": "Основной склад (Екатеринбург)",
        "ТипСклада": "СкладскоеПомещение",
        "РозничныйВидЦены_Key": "2528e58f-e921-11ea-8591-000c29b45b09",
        "Подразделение_Key": EMPTY,
        "Комментарий": "",
        "КонтактнаяИнформация": [
            {
                "LineNumber": "1",
                "Тип": "Адрес",
                "Представление": "г. Екатеринбург, ул. Малышева, 5",
            },
            {"LineNumber": "2", "Тип": "Телефон", "Представление": "+7 343 000-00-00"},
        ],
    }
    return {**record, **changes}


def one(record: dict):
    [out] = normalize(record, {}, CTX)
    return out


def test_the_module_claims_the_warehouse_topic():
    assert normalizers()["raw.onec.warehouse"] is normalize


def test_the_warehouse_the_real_sale_ships_from(onec_sale_document):
    ref = onec_sale_document["Склад_Key"]
    w = one(warehouse(ref))
    assert w.id == UUID(ref) and w.external_ids == {"onec": ref} and w.version == "AAAAAwAAAAA="
    assert (w.code, w.name, w.kind) == (
        "000000001",
        "Основной склад (Екатеринбург)",
        "СкладскоеПомещение",
    )
    assert w.address == "г. Екатеринбург, ул. Малышева, 5" and w.phones == ("+7 343 000-00-00",)
    assert w.retail_price_type_id == UUID("2528e58f-e921-11ea-8591-000c29b45b09")
    assert w.parent_id is None and w.department_id is None


def test_ut103_names():
    w = one(
        {
            "Ref_Key": "f40235d3-d84c-11ea-8133-0050569f62a1",
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": True,
            "Parent_Key": EMPTY,
            "IsFolder": False,
            "Code": "00001",
            "Description": "Розница",
            "ВидСклада": "Розничный",
            "ТипЦенРозничнойТорговли_Key": "3528e58f-e921-11ea-8591-000c29b45b09",
            "Комментарий": "только самовывоз",
        }
    )
    assert w.kind == "Розничный" and w.deleted is True and w.comment == "только самовывоз"
    assert w.retail_price_type_id == UUID("3528e58f-e921-11ea-8591-000c29b45b09")


def test_a_group_of_warehouses():
    w = one(
        warehouse(
            "f40235d3-d84c-11ea-8133-0050569f62a1",
            IsFolder=True,
            Parent_Key="a40235d3-d84c-11ea-8133-0050569f62a1",
        )
    )
    assert w.is_folder is True and w.parent_id == UUID("a40235d3-d84c-11ea-8133-0050569f62a1")


def test_a_vanished_warehouse_is_a_deletion():
    w = one(
        {
            "Ref_Key": "f40235d3-d84c-11ea-8133-0050569f62a1",
            "DataVersion": "deleted:x",
            "_deleted": True,
        }
    )
    assert w.deleted is True and w.name == ""


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"Ref_Key": None}, "Ref_Key"),
        ({"РозничныйВидЦены_Key": "розница"}, "РозничныйВидЦены_Key: not a GUID"),
        ({"IsFolder": "возможно"}, "IsFolder"),
        ({"КонтактнаяИнформация": {"Тип": "Адрес"}}, "must be a list"),
    ],
)
def test_bad_records_say_which_field(changes, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(warehouse("f40235d3-d84c-11ea-8133-0050569f62a1", **changes), {}, CTX)
