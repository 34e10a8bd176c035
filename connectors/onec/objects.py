"""The catalogue of 1С objects the bridge accepts: 1С metadata name -> canonical entity.

УТ 11 and УТ 10.3 name some objects differently (ЗаказКлиента / ЗаказПокупателя, ВидыЦен /
ТипыЦенНоменклатуры, ВозвратТоваровОтКлиента / ВозвратТоваровОтПокупателя); both names map
to the same entity and raw topic, so downstream never needs to know which base sent it.
Names are accepted as 1С metadata names (``Номенклатура``) and as standard OData entity
sets (``Catalog_Номенклатура``, ``Document_ЗаказКлиента``,
``InformationRegister_ЦеныНоменклатуры`` and its ``_RecordType`` form). Pure data.

Stock is an accumulation register (``ТоварыНаСкладах``, the same name in УТ 11 and УТ 10.3;
resource ``ВНаличии`` in УТ 11, ``Количество`` in УТ 10.3). Its standard OData sets are the
movements (``AccumulationRegister_ТоварыНаСкладах``: one RecordSet per recorder with
``Recorder``, ``RecordSet[]`` of ``Period``/``RecordType`` Receipt|Expense/dimensions/
resources; ``…_RecordType``: the single movements) and the balance virtual table
(``AccumulationRegister_ТоварыНаСкладах/Balance(Period=…, Dimensions=…)``: one row per
dimension values with ``<resource>Balance``). The stock entity holds balances, so the OData
reader scans the Balance table (:attr:`OneCObject.read_set`) and a push, to any name of the
register, carries balance rows; movements are refused with a reason
(connectors/onec/validation.py) rather than as an unknown object.
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
ACCUMULATION_PREFIX = "AccumulationRegister_"
#: The virtual table of balances of an accumulation register, as an OData path suffix.
BALANCE_SUFFIX = "/Balance"
# Recorder-subordinate registers publish their single records under this suffix.
_RECORD_TYPE_SUFFIX = "_RecordType"


@dataclass(frozen=True)
class BalanceLayout:
    """How one configuration keeps an accumulation register of goods: the dimensions a
    balance row is asked by (``Dimensions=``; each a reference, so ``<name>_Key`` in the
    answer) and the resources (the quantity first; the answer names them ``<name>Balance``)."""

    configuration: str
    dimensions: tuple[str, ...]
    resources: tuple[str, ...]

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The answer's dimension fields, e.g. ``Склад_Key``."""
        return tuple(f"{name}_Key" for name in self.dimensions)

    @property
    def balance_fields(self) -> tuple[str, ...]:
        """The answer's resource fields, e.g. ``ВНаличииBalance``."""
        return tuple(f"{name}Balance" for name in self.resources)

    @property
    def scan_order(self) -> str:
        """``$orderby`` of a full scan: every dimension, a total order of balance rows."""
        return ",".join(self.key_fields)

    def path(self, odata_name: str) -> str:
        """``<set>/Balance(Dimensions='…')``: current balances by these dimensions."""
        return f"{odata_name}{BALANCE_SUFFIX}(Dimensions='{','.join(self.dimensions)}')"


@dataclass(frozen=True)
class OneCObject:
    """One 1С metadata object: its kind, the canonical entity and the configurations using it."""

    name: str
    kind: Kind
    entity: str
    configurations: tuple[str, ...] = (UT11, UT103)
    # $orderby of a full OData scan: a total order, so paging by $skip is stable.
    scan_order: str = "Ref_Key"
    #: For an accumulation register: its Balance layout per configuration (dimensions a
    #: row is kept by, resources), the first the default; empty for every other object.
    balances: tuple[BalanceLayout, ...] = ()

    @property
    def accumulation(self) -> bool:
        """Whether this is an accumulation register (its records are balances)."""
        return bool(self.balances)

    def balance_layout(self, configuration: str | None = None) -> BalanceLayout:
        """The Balance layout of ``configuration`` (УТ 11 / УТ 10.3), or the default one."""
        for layout in self.balances:
            if configuration in (None, layout.configuration):
                return layout
        raise KeyError(f"{self.name} has no balance layout for {configuration!r}")

    @property
    def balance_set(self) -> str:
        """The default Balance virtual-table path (empty for other objects)."""
        return self.balances[0].path(self.odata_name) if self.balances else ""

    @property
    def odata_name(self) -> str:
        """The standard OData entity set, e.g. ``Catalog_Номенклатура`` (for an accumulation
        register the set of its movements, ``AccumulationRegister_ТоварыНаСкладах``)."""
        if self.accumulation:
            return ACCUMULATION_PREFIX + self.name
        return _ODATA_PREFIX[self.kind] + self.name

    @property
    def read_set(self) -> str:
        """What the OData reader scans: the Balance table of an accumulation register, else
        :attr:`odata_name`."""
        return self.balance_set or self.odata_name

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
    OneCObject(
        "ЦеныНоменклатуры",
        "register",
        "price",
        scan_order="Period,Номенклатура_Key,Характеристика_Key,ВидЦены_Key",
    ),
    # Accumulation register of goods on warehouses: balances by warehouse, product and
    # characteristic. Dimensions= keeps further dimensions (УТ 11 Назначение, Помещение,
    # Серия) out, so one row is one stock row. УТ 10.3 names the characteristic dimension
    # ХарактеристикаНоменклатуры and the quantity Количество: set MM_ODATA__ENTITY_SETS to
    # its Balance path; the reader knows the layout by the path's Dimensions.
    OneCObject(
        "ТоварыНаСкладах",
        "register",
        "stock",
        scan_order="Склад_Key,Номенклатура_Key,Характеристика_Key",
        balances=(
            BalanceLayout(
                UT11, ("Склад", "Номенклатура", "Характеристика"), ("ВНаличии", "ВРезервеСоСклада")
            ),
            BalanceLayout(
                UT103, ("Склад", "Номенклатура", "ХарактеристикаНоменклатуры"), ("Количество",)
            ),
        ),
    ),
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
    name = unicodedata.normalize("NFC", name).strip()
    # A virtual table's parameters (``/Balance(Period=…, Dimensions=…)``) name no other set.
    head, sep, _ = name.partition(BALANCE_SUFFIX + "(")
    return (head + BALANCE_SUFFIX if sep else name).casefold()


def _index() -> dict[str, OneCObject]:
    by_name = {}
    for obj in OBJECTS:
        by_name[_fold(obj.name)] = obj
        by_name[_fold(obj.odata_name)] = obj
        if obj.accumulation:
            for name in (obj.odata_name + _RECORD_TYPE_SUFFIX, obj.odata_name + BALANCE_SUFFIX):
                by_name[_fold(name)] = obj
        elif obj.kind == "register":
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
