"""Prices on ``raw.onec.price`` -> canonical Price (and PriceType). Pure.

The topic carries two shapes, told apart by ``_source``:

* 1С ЦеныНоменклатуры register records (OData / our push; УТ 11 or УТ 10.3 names): period,
  dimensions, ``Цена`` and the ``DataVersion`` the sender supplied. ``Active: false`` (the
  recorder was unposted) and ``"_deleted": true`` (the record vanished) read as deleted.
  ``source_stamp`` is the period, so a record of an older period never replaces the price
  of a newer one.
* CommerceML offers (``"_source": "commerceml"``, see connectors/commerceml/raw_records.py): one
  record per offer and price type, no period. Real УТ exports name a price type by its
  name instead of a GUID (``<Ид>Отпускная цена</Ид>``); such a type gets a derived id and
  a PriceType is emitted with the price, since no 1С catalog record will ever describe it.
  A GUID type is the 1С ВидыЦен / ТипыЦенНоменклатуры item, described by that catalog.

Either way the price's id is :func:`mmstream.models.price.price_id` (product,
characteristic, price type), the same for both shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

from mmstream.avro_gen import DECIMAL_PRECISION, DEFAULT_SCALE
from mmstream.models.base import Canonical
from mmstream.models.price import Price, price_id
from stages.normalize import onec_common as common
from stages.normalize.commerceml_currency import iso_currency
from stages.normalize.commerceml_price_type import named_type, one_line, type_id
from stages.normalize.oddities import (
    Unnormalizable,
    composite_ref,
    decimal,
    onec_datetime,
    ref,
    text,
    yes_no,
)
from stages.normalize.registry import Context

TOPICS = ("raw.onec.price",)


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One register record or CommerceML price record -> its Price (and maybe a PriceType)."""
    record = common.record_of(value)
    if record.get("_source") == "commerceml":
        return from_commerceml(record)
    if record.get("_source") not in (None, "onec"):
        raise Unnormalizable(f"_source: unknown price source {str(record['_source'])[:40]!r}")
    return [from_register(record, ctx)]


def from_register(record: Mapping[str, Any], ctx: Context) -> Price:
    """A ЦеныНоменклатуры record (УТ 11: ВидЦены_Key, Характеристика_Key, Упаковка_Key;
    УТ 10.3: ТипЦен_Key, ХарактеристикаНоменклатуры_Key, ЕдиницаИзмерения_Key, Валюта_Key)."""
    period = onec_datetime(record.get("Period"), ctx.onec_tz, "Period")
    if period is None:
        raise Unnormalizable("Period: a register record needs its period")
    product = _required(ref(record.get("Номенклатура_Key"), "Номенклатура_Key"), "Номенклатура_Key")
    price_type = _required(
        common.first_ref(record, "ВидЦены_Key", "ТипЦен_Key"), "ВидЦены_Key (ТипЦен_Key in УТ 10.3)"
    )
    characteristic = common.first_ref(
        record, "Характеристика_Key", "ХарактеристикаНоменклатуры_Key"
    )
    version = text(record.get("DataVersion"))
    if not version:
        raise Unnormalizable("DataVersion: missing (the sender supplies it for register records)")
    gone = common.is_deletion(record)
    active = yes_no(record.get("Active"), "Active")
    amount = None if gone else _fits(decimal(record.get("Цена"), "Цена"), "Цена")
    if amount is None and not gone:
        raise Unnormalizable("Цена: missing")
    return Price(
        id=price_id(product, characteristic, price_type),
        source="onec",
        version=version,
        source_stamp=period,
        deleted=gone or active is False,
        product_id=product,
        characteristic_id=characteristic,
        price_type_id=price_type,
        price=amount,
        currency_id=ref(record.get("Валюта_Key"), "Валюта_Key"),
        unit_id=common.first_ref(record, "Упаковка_Key", "ЕдиницаИзмерения_Key"),
        valid_from=period,
        recorder_id=_recorder(record),
    )


def from_commerceml(record: Mapping[str, Any]) -> list[Canonical]:
    """A CommerceML price record -> [Price] or [PriceType, Price] (a type named, not a GUID)."""
    product = _required(ref(record.get("product_id"), "product_id"), "product_id")
    characteristic = ref(record.get("characteristic_id"), "characteristic_id")
    type_key = text(record.get("price_type_id"))
    if not type_key:
        raise Unnormalizable("price_type_id: missing")
    version = text(record.get("version"))
    if not version:
        raise Unnormalizable("version: missing")
    ptype, is_guid = type_id(type_key)
    currency = iso_currency(record.get("currency"), "currency")
    price = Price(
        id=price_id(product, characteristic, ptype),
        source="commerceml",
        version=version,
        deleted=bool(yes_no(record.get("deleted"), "deleted")),
        product_id=product,
        characteristic_id=characteristic,
        price_type_id=ptype,
        price=_required(_fits(decimal(record.get("price"), "price"), "price"), "price"),
        currency=currency,
        unit=text(record.get("unit")),
        ratio=_fits(decimal(record.get("ratio"), "ratio"), "ratio"),
    )
    type_name = one_line(record.get("price_type_name"))
    if is_guid or not type_name:
        return [price]
    # The same PriceType the type's own declaration record gives (commerceml_price_type).
    return [named_type(type_key, type_name, currency), price]


def _recorder(record: Mapping[str, Any]) -> UUID | None:
    # A register's recorder is a composite reference (``Recorder`` + ``Recorder_Type``
    # ``StandardODATA.Document_УстановкаЦенНоменклатуры``; our push may say ``Recorder_Key``).
    # The type adds nothing the price needs.
    return composite_ref(record, "Recorder")[0]


def _required(value: Any, field: str) -> Any:
    if value is None:
        raise Unnormalizable(f"{field}: missing or the empty reference")
    return value


def _fits(value: Decimal | None, field: str) -> Decimal | None:
    """Refuse a number the Avro decimal of the normalized topic cannot hold exactly (rounding
    a price silently is worse than a DLQ record)."""
    if value is None:
        return None
    places = max(0, -int(value.normalize().as_tuple().exponent))
    whole_digits = max(0, value.adjusted() + 1)
    if places > DEFAULT_SCALE or whole_digits + DEFAULT_SCALE > DECIMAL_PRECISION:
        raise Unnormalizable(
            f"{field}: {value} does not fit decimal({DECIMAL_PRECISION},{DEFAULT_SCALE})"
        )
    return value
