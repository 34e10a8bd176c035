"""1C Номенклатура (OData / JSON push shape) -> canonical Product. Pure functions.

Claims ``raw.onec.product`` for the entity sink: 1С's OData and push records are mapped
here, the records of 1С's exchange with a site (``"_source": "commerceml"``) by
:mod:`streams.normalize.commerceml_product`, and a deletion record (``"_deleted": true``,
the object vanished from 1С) names the product only, so the sink flags it deleted and keeps
what it knew.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from mmstream.errors import InvalidRecord
from mmstream.models.product import Product
from streams.normalize import onec_common as common
from streams.normalize.registry import Context

TOPICS = ("raw.onec.product",)
EMPTY_REF = UUID(int=0)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here (a 4xx at the bridge) rather than
    # accept the record and fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


def _real_ref(value: UUID) -> UUID:
    if value == EMPTY_REF:
        raise ValueError("the all-zero GUID means 'no reference' in 1C, not an object id")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
ObjectRef = Annotated[UUID, AfterValidator(_real_ref)]


class OneCNomenclature(BaseModel):
    """A Catalog_Номенклатура record as 1C's standard OData interface returns it.

    Unknown fields are kept out of validation on purpose: every configuration adds its own
    attributes, and rejecting them would reject real data.
    """

    # Stripping before the length checks: a name of only spaces is no name.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True)

    Ref_Key: ObjectRef
    DataVersion: Text = Field(min_length=1, max_length=64)
    DeletionMark: StrictBool = False
    Code: Text = Field("", max_length=64)
    Description: Text = Field(min_length=1, max_length=1024)
    Parent_Key: UUID | None = None
    IsFolder: StrictBool = False
    full_name: Text = Field("", alias="НаименованиеПолное", max_length=4096)
    article: Text = Field("", alias="Артикул", max_length=256)
    unit_key: UUID | None = Field(None, alias="ЕдиницаИзмерения_Key")
    is_service: StrictBool = Field(False, alias="Услуга")


def _ref(value: UUID | None) -> UUID | None:
    # 1C writes "no reference" as the all-zero GUID.
    return None if value is None or value == EMPTY_REF else value


def to_product(record: OneCNomenclature) -> Product:
    """Map a validated 1C record to the canonical product."""
    return Product(
        id=record.Ref_Key,
        source="onec",
        version=record.DataVersion,
        external_ids={"onec": str(record.Ref_Key)},
        code=record.Code.strip(),
        name=record.Description.strip(),
        full_name=record.full_name.strip(),
        article=record.article.strip(),
        parent_id=_ref(record.Parent_Key),
        unit_id=_ref(record.unit_key),
        is_folder=record.IsFolder,
        is_service=record.is_service,
        deleted=record.DeletionMark,
    )


def parse(raw: bytes) -> Product:
    """Raw record bytes (JSON) -> Product, or InvalidRecord saying what is wrong."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRecord(f"not valid UTF-8 JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        # Huge integers and absurd nesting: still bad input, never a reason to crash the sink.
        raise InvalidRecord(f"JSON the parser refuses: {type(exc).__name__}: {exc}") from exc
    return from_record(doc)


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Product]:
    """One raw product record (decoded by the sink) -> one Product."""
    return [from_record(value)]


def from_record(doc: object) -> Product:
    """A decoded raw product record -> Product, or InvalidRecord saying what is wrong."""
    if not isinstance(doc, dict):
        raise InvalidRecord(f"expected a JSON object, got {type(doc).__name__}")
    if common.is_deletion(doc):
        # Identity only: the sink flags the stored product deleted and blanks nothing.
        return Product(**common.identity(doc), name="")
    if doc.get("_source") == "commerceml":
        # The stock 1C exchange with a site publishes its own record shape.
        from streams.normalize.commerceml_product import to_product as from_commerceml

        return from_commerceml(doc)
    try:
        return to_product(OneCNomenclature.model_validate(doc))
    except ValidationError as exc:
        raise InvalidRecord(validation_message(exc)) from exc


def validation_message(exc: ValidationError) -> str:
    """A one-line summary of pydantic errors: ``field: problem; field: problem``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": ..., "problem": ...}]`` for API error bodies."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(record)", "problem": err["msg"]}
        for err in exc.errors(include_url=False)
    ]
