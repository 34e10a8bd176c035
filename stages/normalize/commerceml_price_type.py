"""CommerceML price types (``ТипыЦен/ТипЦены`` as connectors/commerceml/raw_records.py publishes
them on raw.onec.price_type) -> canonical PriceType. Pure; no TOPICS: onec_price_type.py
claims the topic and hands ``"_source": "commerceml"`` here.

Ids: a GUID ``Ид`` is the 1С ВидыЦен / ТипыЦенНоменклатуры Ref_Key; real УТ exports name a
type by its name (``<Ид>Отпускная цена</Ид>``), which gets a derived id — the same one
:mod:`stages.normalize.onec_price` gives the prices of that type.

A named type is also emitted with each of its prices (records published before the
declarations were). Both paths build it with :func:`named_type` from the same fields, so
they give one version and the second is a duplicate, not a competing change; a GUID type
is only described here and carries the tax flag too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from mmstream.models.base import derived_id
from mmstream.models.price_type import PriceType
from stages.normalize.commerceml_currency import iso_currency
from stages.normalize.oddities import Unnormalizable, text, yes_no

SOURCE = "commerceml"


def type_id(type_key: str) -> tuple[UUID, bool]:
    """(canonical id, whether the key is a 1С GUID) of a CommerceML price type ``Ид``."""
    try:
        guid = UUID(type_key)
    except ValueError:
        return derived_id("price_type", SOURCE, type_key), False
    if guid.int == 0:
        raise Unnormalizable("price_type_id: the empty GUID is not a price type")
    return guid, True


def one_line(value: Any) -> str:
    """A name as one line: 1С pretty-prints long names over several indented lines."""
    return " ".join(text(value).split())


def named_type(type_key: str, name: str, currency: str) -> PriceType:
    """The PriceType of a type 1С names instead of giving a GUID (content-hash version)."""
    digest = hashlib.sha256(f"{type_key}\x1f{name}\x1f{currency}".encode()).hexdigest()
    return PriceType(
        id=type_id(type_key)[0],
        source=SOURCE,
        version=f"h:{digest[:32]}",
        external_ids={SOURCE: type_key},
        name=name,
        currency=currency,
    )


def to_price_type(record: Mapping[str, Any]) -> PriceType:
    """One CommerceML price type declaration -> its PriceType."""
    type_key = text(record.get("id"))
    if not type_key:
        raise Unnormalizable("id: a CommerceML price type without Ид")
    version = text(record.get("version"))
    if not version:
        raise Unnormalizable("version: missing")
    name = one_line(record.get("name"))
    currency = iso_currency(record.get("currency"), "currency")
    ident, is_guid = type_id(type_key)
    deleted = bool(yes_no(record.get("deleted"), "deleted"))
    if not name and not deleted:
        raise Unnormalizable("name: a CommerceML price type without Наименование")
    if not is_guid:
        return named_type(type_key, name, currency)
    tax = record.get("tax")
    if tax is not None and not isinstance(tax, Mapping):
        raise Unnormalizable("tax: expected an object")
    return PriceType(
        id=ident,
        source=SOURCE,
        version=version[:64],
        deleted=deleted,
        external_ids={"onec": str(ident)},
        code=text(record.get("code")),
        name=name,
        currency=currency,
        includes_vat=yes_no(tax.get("included"), "tax.included") if tax else None,
        comment=text(record.get("description")),
    )
