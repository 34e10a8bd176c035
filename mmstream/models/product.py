"""Canonical product (1C Номенклатура) — the shape stored in PostgreSQL and on norm.product."""

from __future__ import annotations

from uuid import UUID

from pydantic import ConfigDict, Field

from mmstream.models.bounds import Bounded


class ProductProperty(Bounded):
    """One value of a product property (CommerceML ``ЗначенияСвойств/ЗначенияСвойства``, the
    property declared in ``Классификатор/Свойства``). A property with several values gives
    one item per value, in the order 1С sent them."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="the property's Ид (a 1С GUID, as sent)")
    name: str = Field("", description="the property's Наименование from the Классификатор; "
                                      "empty when the document does not declare it")
    value: str = Field("", description="the value as text; a dictionary (Справочник) value "
                                       "resolved to its text; empty when it cannot be resolved")
    value_id: str = Field("", description="the dictionary value's ИдЗначения when the value is "
                                          "one of the property's ВариантыЗначений; else empty")


class Product(Bounded):
    """One product version. The canonical id is the 1C Ref_Key (1C owns master data).
    Building one with a value the pipeline cannot carry raises OutOfBounds (InvalidRecord)."""

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(description="canonical id: the 1C Ref_Key")
    source: str = Field("onec", description="system the version came from")
    version: str = Field(description="source version (1C DataVersion, opaque)")
    code: str = Field("", description="1C Code")
    name: str = Field(description="short name (1C Description)")
    full_name: str = Field("", description="full name (НаименованиеПолное; CommerceML "
                                           "requisite 'Полное наименование')")
    article: str = Field("", description="article / SKU (Артикул)")
    barcode: str = Field("", description="barcode, EAN as 1С holds it (CommerceML Штрихкод "
                                         "element or requisite); empty when none is sent")
    parent_id: UUID | None = Field(None, description="group the product belongs to")
    unit_id: UUID | None = Field(None, description="unit of measure (ЕдиницаИзмерения_Key)")
    is_folder: bool = Field(False, description="a group of products, not a product")
    is_service: bool = Field(False, description="a service rather than goods (Услуга)")
    deleted: bool = Field(False, description="marked for deletion in 1C (DeletionMark)")
    properties: tuple[ProductProperty, ...] = Field(
        (), description="property values (CommerceML ЗначенияСвойств), one item per value; "
                        "empty when the source sends none (1С OData and push records)")
