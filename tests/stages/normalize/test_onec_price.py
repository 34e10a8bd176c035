"""ЦеныНоменклатуры register records and CommerceML offers on raw.onec.price -> Price."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from mmstream.models.base import derived_id
from mmstream.models.price import Price, price_id
from mmstream.models.price_type import PriceType
from stages.normalize.oddities import EMPTY_DATE, Unnormalizable
from stages.normalize.onec_price import normalize
from stages.normalize.registry import Context, normalizers

CTX = Context(onec_tz=ZoneInfo("Asia/Yekaterinburg"))
EMPTY = "00000000-0000-0000-0000-000000000000"
PRODUCT = "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09"
TYPE = "2528e58f-e921-11ea-8591-000c29b45b09"
VARIANT = "a5abd77f-93f6-11e5-9468-00155d020201"


def ut11(**changes) -> dict:
    """A УТ 11 InformationRegister_ЦеныНоменклатуры record (version supplied by the sender)."""
    record = {
        "Period": "2024-05-01T00:00:00",
        "Recorder_Key": "9c9660f6-6332-11ec-ad72-000c29b45b09",
        "LineNumber": "3",
        "Active": True,
        "Номенклатура_Key": PRODUCT,
        "Характеристика_Key": EMPTY,
        "ВидЦены_Key": TYPE,
        "Цена": 1250.5,
        "Упаковка_Key": EMPTY,
        "DataVersion": "AAAAAQAAAAA=",
    }
    return {**record, **changes}


def ut103(**changes) -> dict:
    """The same price as УТ 10.3 names it."""
    record = {
        "Period": "2024-05-01T00:00:00",
        "Номенклатура_Key": PRODUCT,
        "ХарактеристикаНоменклатуры_Key": EMPTY,
        "ТипЦен_Key": TYPE,
        "Цена": "1250,50",
        "Валюта_Key": "a192de9a-d84c-11ea-8133-0050569f62a1",
        "ЕдиницаИзмерения_Key": "f40235d5-d84c-11ea-8133-0050569f62a1",
        "DataVersion": "h:0123456789abcdef0123456789abcdef",
    }
    return {**record, **changes}


def one(record: dict) -> Price:
    [out] = normalize(record, {}, CTX)
    return out


def test_the_module_claims_the_price_topic():
    assert normalizers()["raw.onec.price"] is normalize


def test_a_register_record_becomes_the_price_of_product_and_type():
    p = one(ut11())
    assert p.id == price_id(UUID(PRODUCT), None, UUID(TYPE))
    assert p.id == derived_id("price", "onec", f"{PRODUCT}|{EMPTY}|{TYPE}")
    assert (p.product_id, p.characteristic_id, p.price_type_id) == (UUID(PRODUCT), None, UUID(TYPE))
    assert p.price == Decimal("1250.5") and p.source == "onec" and p.version == "AAAAAQAAAAA="
    # 1С dates carry no zone: the base's zone is applied, and the period orders versions.
    period = datetime(2024, 5, 1, tzinfo=ZoneInfo("Asia/Yekaterinburg"))
    assert p.valid_from == period and p.source_stamp == period
    assert p.recorder_id == UUID("9c9660f6-6332-11ec-ad72-000c29b45b09") and p.unit_id is None
    assert p.deleted is False and p.external_ids == {}


def test_a_composite_recorder_reference_is_read_without_its_type():
    record = {k: v for k, v in ut11().items() if k != "Recorder_Key"}
    p = one(
        {
            **record,
            "Recorder": "9c9660f6-6332-11ec-ad72-000c29b45b09",
            "Recorder_Type": "StandardODATA.Document_УстановкаЦенНоменклатуры",
        }
    )
    assert p.recorder_id == UUID("9c9660f6-6332-11ec-ad72-000c29b45b09")
    assert one({**record, "Recorder": EMPTY, "Recorder_Type": ""}).recorder_id is None


def test_ut103_names_give_the_same_price():
    old, new = one(ut103()), one(ut11())
    assert old.id == new.id and old.price == Decimal("1250.50")  # "1250,50": a string, comma
    assert old.currency_id == UUID("a192de9a-d84c-11ea-8133-0050569f62a1")
    assert old.unit_id == UUID("f40235d5-d84c-11ea-8133-0050569f62a1")


def test_a_later_period_is_a_newer_version_of_the_same_price():
    early, late = one(ut11()), one(ut11(Period="2024-06-01T00:00:00", Цена=1300))
    assert early.id == late.id and early.source_stamp < late.source_stamp


def test_a_characteristic_is_part_of_the_identity():
    p = one(ut11(Характеристика_Key=VARIANT))
    assert p.characteristic_id == UUID(VARIANT) and p.id != one(ut11()).id


def test_inactive_and_vanished_records_are_deletions():
    assert one(ut11(Active=False)).deleted is True
    gone = one(
        {
            "Period": "2024-05-01T00:00:00",
            "Номенклатура_Key": PRODUCT,
            "ВидЦены_Key": TYPE,
            "DataVersion": "deleted:AAAAAQAAAAA=",
            "DeletionMark": True,
            "_deleted": True,
        }
    )
    assert gone.deleted is True and gone.price is None and gone.id == one(ut11()).id


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"Period": EMPTY_DATE}, "Period"),
        ({"Period": "01.05.2024"}, "Period: not a 1С date"),
        ({"Номенклатура_Key": EMPTY}, "Номенклатура_Key: missing"),
        ({"ВидЦены_Key": EMPTY}, "ВидЦены_Key"),
        ({"ВидЦены_Key": None}, "ТипЦен_Key in УТ 10.3"),
        ({"Цена": None}, "Цена: missing"),
        ({"Цена": "дорого"}, "Цена: not a number"),
        ({"Цена": True}, "Цена: a boolean"),
        ({"Цена": "1.23456"}, r"does not fit decimal\(20,4\)"),
        ({"Цена": "1e17"}, r"Цена: 1E\+17 exceeds decimal\(20,4\)"),
        ({"DataVersion": ""}, "DataVersion"),
        ({"_source": "excel"}, "unknown price source"),
    ],
)
def test_register_records_that_cannot_be_normalized_say_which_field(changes, reason):
    with pytest.raises(Unnormalizable, match=reason):
        normalize(ut11(**changes), {}, CTX)


def test_trailing_zeros_are_not_extra_decimal_places():
    assert one(ut11(Цена="99.9900000")).price == Decimal("99.9900000")


def test_every_real_commerceml_price_normalizes(commerceml_offer_records):
    payloads = commerceml_offer_records["price"]
    assert len(payloads) == 84
    out = [normalize(payload, {}, CTX) for payload in payloads]
    prices = [e for entities in out for e in entities if isinstance(e, Price)]
    types = [e for entities in out for e in entities if isinstance(e, PriceType)]
    assert len(prices) == 84 and len({p.id for p in prices}) == 84
    # The real УТ export names its price type by name: one derived type, Cyrillic intact.
    type_id = derived_id("price_type", "commerceml", "Отпускная цена")
    assert {p.price_type_id for p in prices} == {type_id}
    assert len(types) == 84 and len({(t.id, t.version) for t in types}) == 1  # duplicates
    price_type = types[0]
    assert (price_type.name, price_type.currency, price_type.external_ids) == (
        "Отпускная цена",
        "RUB",
        {"commerceml": "Отпускная цена"},
    )
    assert sum(p.deleted for p in prices) == 6  # <Статус>Удален</Статус>
    first = prices[0]
    assert (first.product_id, first.characteristic_id) == (
        UUID("235ccc6d-ab81-11e4-944a-00155d020201"),
        UUID(VARIANT),
    )
    assert (first.price, first.currency, first.unit, first.ratio, first.source) == (
        Decimal("2042.66"),
        "RUB",
        "шт",
        Decimal("1"),
        "commerceml",
    )
    assert first.valid_from is None and first.version == payloads[0]["version"]


def test_a_commerceml_price_of_a_guid_type_is_the_1c_price(commerceml_offer_records):
    payload = {
        **commerceml_offer_records["price"][0],
        "price_type_id": TYPE,
        "price_type_name": "Розничная",
        "product_id": PRODUCT,
        "characteristic_id": None,
    }
    [p] = normalize(payload, {}, CTX)  # no PriceType: the 1С catalog describes a GUID type
    assert p.id == one(ut11()).id and p.price_type_id == UUID(TYPE)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"product_id": "ORDER_DELIVERY"}, "product_id: not a GUID"),
        ({"characteristic_id": "синий"}, "characteristic_id: not a GUID"),
        ({"price_type_id": ""}, "price_type_id: missing"),
        ({"price": None}, "price: missing"),
        ({"price": "12.34567"}, "does not fit"),
        ({"version": None}, "version: missing"),
        ({"deleted": "может быть"}, "deleted: not Y/N"),
    ],
)
def test_commerceml_prices_that_cannot_be_normalized_say_which_field(
    commerceml_offer_records, changes, reason
):
    with pytest.raises(Unnormalizable, match=reason):
        normalize({**commerceml_offer_records["price"][0], **changes}, {}, CTX)
