"""1С ВидыЦен (УТ 11) and ТипыЦенНоменклатуры (УТ 10.3) -> canonical PriceType. Pure.

Both name one thing and share ``raw.onec.price_type``; their fields differ but do not
conflict, so no need to tell them apart. CommerceML price types (``"_source":
"commerceml"``: the ``ТипыЦен`` declarations of the exchange with a site) share the topic and
are mapped by :mod:`stages.normalize.commerceml_price_type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.price_type import PriceType
from stages.normalize import onec_common as common
from stages.normalize.commerceml_price_type import to_price_type as from_commerceml
from stages.normalize.oddities import Unnormalizable, decimal, ref, text, yes_no
from stages.normalize.registry import Context

TOPICS = ("raw.onec.price_type",)


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[PriceType]:
    """One ВидыЦен / ТипыЦенНоменклатуры record -> one PriceType."""
    record = common.record_of(value)
    if record.get("_source") == "commerceml":
        return [from_commerceml(record)]
    if record.get("_source") not in (None, "onec"):
        raise Unnormalizable(f"_source: unknown price type source {str(record['_source'])[:40]!r}")
    ident = common.identity(record)
    if common.is_deletion(record):
        return [PriceType(**ident, name="")]
    fields = common.catalog_fields(record)
    return [
        PriceType(
            **ident,
            code=fields["code"],
            name=fields["name"],
            currency_id=ref(record.get("ВалютаЦены_Key"), "ВалютаЦены_Key"),
            includes_vat=yes_no(record.get("ЦенаВключаетНДС"), "ЦенаВключаетНДС"),
            pricing_method=_pricing_method(record),
            base_price_type_id=ref(record.get("БазовыйТипЦен_Key"), "БазовыйТипЦен_Key"),
            markup_percent=decimal(record.get("ПроцентСкидкиНаценки"), "ПроцентСкидкиНаценки"),
            for_sale=yes_no(record.get("ИспользоватьПриПродаже"), "ИспользоватьПриПродаже"),
            comment=text(record.get("Комментарий")),
        )
    ]


def _pricing_method(record: Mapping[str, Any]) -> str:
    method = text(record.get("СпособЗаданияЦены"))  # УТ 11 enumeration, kept as 1С names it
    if method:
        return method
    calculated = yes_no(record.get("Рассчитывается"), "Рассчитывается")  # УТ 10.3
    if calculated is None:
        return ""
    return "Рассчитывается" if calculated else "Вручную"
