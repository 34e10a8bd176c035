"""1С Номенклатура as 1С's standard OData interface (and the push bridge) sends it: the
validation model both the bridge (accept/reject at the door) and the product normalizer use,
and pydantic's errors turned into the API's ``[{"field", "problem"}]`` details. Pure."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

EMPTY_REF = UUID(int=0)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here (a 4xx at the bridge) rather than
    # accept the record and fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


def _real_ref(value: UUID) -> UUID:
    if value == EMPTY_REF:
        raise ValueError("the all-zero GUID means 'no reference' in 1С, not an object id")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
ObjectRef = Annotated[UUID, AfterValidator(_real_ref)]


class OneCNomenclature(BaseModel):
    """A Catalog_Номенклатура record as 1С's standard OData interface returns it.

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
