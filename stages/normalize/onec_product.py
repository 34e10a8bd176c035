"""1С Номенклатура (OData / JSON push shape) -> canonical Product. Pure functions.

Claims ``raw.onec.product`` for the entity sink: 1С's OData and push records are mapped
here, the records of 1С's exchange with a site (``"_source": "commerceml"``) by
:mod:`stages.normalize.commerceml_product`, and a deletion record (``"_deleted": true``,
the object vanished from 1С) names the product only, so the sink flags it deleted and keeps
what it knew.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from pydantic import ValidationError

# The validation model of 1С's record is the connector's (the bridge checks pushes with it);
# re-exported here for the normalizer's callers.
from connectors.onec.nomenclature import (  # noqa: F401
    EMPTY_REF,
    OneCNomenclature,
    validation_details,
    validation_message,
)
from mmstream.errors import InvalidRecord
from mmstream.models.product import Product
from stages.normalize import onec_common as common
from stages.normalize.registry import Context

TOPICS = ("raw.onec.product",)


def _ref(value: UUID | None) -> UUID | None:
    # 1С writes "no reference" as the all-zero GUID.
    return None if value is None or value == EMPTY_REF else value


def to_product(record: OneCNomenclature) -> Product:
    """Map a validated 1С record to the canonical product."""
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
        # The stock 1С exchange with a site publishes its own record shape.
        from stages.normalize.commerceml_product import to_product as from_commerceml

        return from_commerceml(doc)
    try:
        return to_product(OneCNomenclature.model_validate(doc))
    except ValidationError as exc:
        raise InvalidRecord(validation_message(exc)) from exc
