"""1С ВидыЦен (УТ 11) and ТипыЦенНоменклатуры (УТ 10.3) -> PriceType."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from stages.normalize.oddities import Unnormalizable
from stages.normalize.onec_price_type import normalize
from stages.normalize.registry import Context, normalizers

CTX = Context()
EMPTY = "00000000-0000-0000-0000-000000000000"
RUB = "a192de9a-d84c-11ea-8133-0050569f62a1"


def one(record: dict):
    [out] = normalize(record, {}, CTX)
    return out


def test_the_module_claims_the_price_type_topic():
    assert normalizers()["raw.onec.price_type"] is normalize


def test_ut11_price_type():
    t = one(
        {
            "Ref_Key": "2528e58f-e921-11ea-8591-000c29b45b09",
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": False,
            "Code": "000000001",
            "Description": "Розничная",
            "ВалютаЦены_Key": RUB,
            "ЦенаВключаетНДС": True,
            "СпособЗаданияЦены": "Вручную",
            "ИспользоватьПриПродаже": True,
            "Комментарий": "",
        }
    )
    assert (t.name, t.currency_id, t.includes_vat, t.pricing_method, t.for_sale) == (
        "Розничная",
        UUID(RUB),
        True,
        "Вручную",
        True,
    )
    assert t.base_price_type_id is None and t.markup_percent is None


def test_ut103_price_type_calculated_from_a_base():
    t = one(
        {
            "Ref_Key": "3528e58f-e921-11ea-8591-000c29b45b09",
            "DataVersion": "AAAAAgAAAAA=",
            "DeletionMark": False,
            "Code": "00002",
            "Description": "Мелкооптовая",
            "ВалютаЦены_Key": RUB,
            "ЦенаВключаетНДС": False,
            "Рассчитывается": True,
            "БазовыйТипЦен_Key": "2528e58f-e921-11ea-8591-000c29b45b09",
            "ПроцентСкидкиНаценки": "-5.5",
        }
    )
    assert (t.pricing_method, t.includes_vat, t.markup_percent) == (
        "Рассчитывается",
        False,
        Decimal("-5.5"),
    )
    assert t.base_price_type_id == UUID("2528e58f-e921-11ea-8591-000c29b45b09")
    assert (
        one(
            {
                "Ref_Key": "3528e58f-e921-11ea-8591-000c29b45b09",
                "DataVersion": "v",
                "Description": "Закупочная",
                "Рассчитывается": False,
            }
        ).pricing_method
        == "Вручную"
    )


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"ПроцентСкидкиНаценки": "пять"}, "ПроцентСкидкиНаценки: not a number"),
        ({"ЦенаВключаетНДС": "да"}, "ЦенаВключаетНДС: not Y/N"),
        ({"ВалютаЦены_Key": "RUB"}, "ВалютаЦены_Key: not a GUID"),
    ],
)
def test_bad_records_say_which_field(changes, reason):
    record = {
        "Ref_Key": "3528e58f-e921-11ea-8591-000c29b45b09",
        "DataVersion": "v",
        "Description": "Оптовая",
        **changes,
    }
    with pytest.raises(Unnormalizable, match=reason):
        normalize(record, {}, CTX)
