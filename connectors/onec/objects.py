"""The catalogue of 1С objects the bridge accepts: 1С metadata name -> canonical entity.

УТ 11 and УТ 10.3 name some objects differently (ЗаказКлиента / ЗаказПокупателя, ВидыЦен /
ТипыЦенНоменклатуры, ВозвратТоваровОтКлиента / ВозвратТоваровОтПокупателя); both names map
to the same entity and raw topic, so downstream never needs to know which base sent it.
Names are accepted as 1С metadata names (``Номенклатура``) and as standard OData entity
sets (``Catalog_Номенклатура``, ``Document_ЗаказКлиента``,
``InformationRegister_ЦеныНоменклатуры`` and its ``_RecordType`` form). Pure data.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Kind = Literal["catalog", "document", "register"]

UT11 = "УТ 11"
UT103 = "УТ 10.3"

_ODATA_PREFIX: dict[Kind, str] = {
    "catalog": "Catalog_",
    "document": "Document_",
    "register": "InformationRegister_",
}
# Recorder-subordinate registers publish their single records under this suffix.
_RECORD_TYPE_SUFFIX = "_RecordType"


@dataclass(frozen=True)
class OneCObject:
    """One 1С metadata object: its kind, the canonical entity and the configurations using it."""

    name: str
    kind: Kind
    entity: str
    configurations: tuple[str, ...] = (UT11, UT103)
    # $orderby of a full OData scan: a total order, so paging by $skip is stable.
    scan_order: str = "Ref_Key"

    @property
    def odata_name(self) -> str:
        """The standard OData entity set, e.g. ``Catalog_Номенклатура``."""
        return _ODATA_PREFIX[self.kind] + self.name

    @property
    def topic(self) -> str:
        """The logical raw topic (topics.yaml) records of this object go to."""
        return f"raw.onec.{self.entity}"

    @property
    def event_type(self) -> str:
        """The CloudEvents ``type`` of a change of this object."""
        return f"ru.mastermobile.onec.{self.entity}.v1"


OBJECTS: tuple[OneCObject, ...] = (
    OneCObject("Номенклатура", "catalog", "product"),
    OneCObject("Контрагенты", "catalog", "counterparty"),
    OneCObject("Партнеры", "catalog", "counterparty", (UT11,)),
    # Contracts are owned by a counterparty (Owner_Key) but change on their own: own entity.
    OneCObject("ДоговорыКонтрагентов", "catalog", "contract"),
    OneCObject("Склады", "catalog", "warehouse"),
    OneCObject("Организации", "catalog", "organization"),
    OneCObject("ВидыЦен", "catalog", "price_type", (UT11,)),
    OneCObject("ТипыЦенНоменклатуры", "catalog", "price_type", (UT103,)),
    # Periodic register: no Ref_Key, a record is identified by its period and dimensions.
    OneCObject("ЦеныНоменклатуры", "register", "price",
               scan_order="Period,Номенклатура_Key,Характеристика_Key,ВидЦены_Key"),
    OneCObject("Пользователи", "catalog", "employee"),
    OneCObject("ФизическиеЛица", "catalog", "employee"),
    # Not in УТ itself: bases with HR (КА, ERP, УПП) keep couriers here.
    OneCObject("Сотрудники", "catalog", "employee"),
    OneCObject("ЗаказКлиента", "document", "customer_order", (UT11,)),
    OneCObject("ЗаказПокупателя", "document", "customer_order", (UT103,)),
    OneCObject("РеализацияТоваровУслуг", "document", "shipment"),
    OneCObject("ВозвратТоваровОтКлиента", "document", "return", (UT11,)),
    OneCObject("ВозвратТоваровОтПокупателя", "document", "return", (UT103,)),
    OneCObject("ПриходныйКассовыйОрдер", "document", "cash_receipt"),
    OneCObject("РасходныйКассовыйОрдер", "document", "cash_expense"),
    OneCObject("АвансовыйОтчет", "document", "advance_report"),
)

# Route names kept from the first API version.
ALIASES: dict[str, str] = {"products": "Номенклатура"}


def _fold(name: str) -> str:
    # 1С names are case-insensitive; URLs may carry decomposed Cyrillic (й as и + breve).
    return unicodedata.normalize("NFC", name).strip().casefold()


def _index() -> dict[str, OneCObject]:
    by_name = {}
    for obj in OBJECTS:
        by_name[_fold(obj.name)] = obj
        by_name[_fold(obj.odata_name)] = obj
        if obj.kind == "register":
            by_name[_fold(obj.odata_name + _RECORD_TYPE_SUFFIX)] = obj
    for alias, name in ALIASES.items():
        by_name[_fold(alias)] = by_name[_fold(name)]
    return by_name


_BY_NAME = _index()


def lookup(name: str) -> OneCObject | None:
    """The object named ``name`` (1С name, OData entity set or alias), or None."""
    return _BY_NAME.get(_fold(name))


def accepted_names() -> list[str]:
    """Every name :func:`lookup` knows, 1С names first, for error messages and docs."""
    plain = [obj.name for obj in OBJECTS]
    odata = [obj.odata_name for obj in OBJECTS]
    return plain + odata + list(ALIASES)


def entities() -> list[str]:
    """The canonical entities 1С objects map to, sorted."""
    return sorted({obj.entity for obj in OBJECTS})
