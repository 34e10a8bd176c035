"""Canonical product (1С Номенклатура). 1С owns it; the canonical id is the 1С Ref_Key."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import ConfigDict, Field

from mmstream.models.base import Canonical
from mmstream.models.bounds import Bounded


class ProductProperty(Bounded):
    """One value of a product property (CommerceML ``ЗначенияСвойств/ЗначенияСвойства``, the
    property declared in ``Классификатор/Свойства``). A property with several values gives
    one item per value, in the order 1С sent them."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="the property's Ид (a 1С GUID, as sent)")
    name: str = Field(
        "",
        description="the property's Наименование from the Классификатор; "
        "empty when the document does not declare it",
    )
    value: str = Field(
        "",
        description="the value as text; a dictionary (Справочник) value "
        "resolved to its text; empty when it cannot be resolved",
    )
    value_id: str = Field(
        "",
        description="the dictionary value's ИдЗначения when the value is "
        "one of the property's ВариантыЗначений; else empty",
    )


class Product(Canonical):
    """A product or product group (1С Номенклатура); 1С owns every field.

    Bitrix24 versions (what the portal shows of a product we wrote) only add the crosswalk."""

    ENTITY: ClassVar[str] = "product"

    code: str = Field("", description="1С Code")
    name: str = Field(description="short name (1С Description)")
    full_name: str = Field(
        "", description="full name (НаименованиеПолное; CommerceML requisite 'Полное наименование')"
    )
    article: str = Field("", description="article / SKU (Артикул)")
    barcode: str = Field(
        "",
        description="barcode, EAN as 1С holds it (CommerceML Штрихкод "
        "element or requisite); empty when none is sent",
    )
    parent_id: UUID | None = Field(
        None, description="group the product belongs to", json_schema_extra={"ref": "product"}
    )
    unit_id: UUID | None = Field(
        None, description="unit of measure (ЕдиницаИзмерения_Key; units are not a canonical entity)"
    )
    is_folder: bool = Field(False, description="a group of products, not a product")
    is_service: bool = Field(False, description="a service rather than goods (Услуга)")
    properties: tuple[ProductProperty, ...] = Field(
        (),
        description="property values (CommerceML ЗначенияСвойств), one item per value; "
        "empty when the source sends none (1С OData and push records)",
    )
