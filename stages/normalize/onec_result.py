"""1С's answers to the middleware's writes (``raw.onec.result``, published by the egress
worker, stages/egress/courier_documents.py) -> versions of the entity the write was for.
Pure.

* instant order: 1С's version carries the document (Ref_Key, entity set, number, posted) —
  fields only 1С writes — and the middleware's version the status ``recorded``;
* return: only the middleware's status. The document's fields are 1С's whole header and
  lines, which only 1С's own record of the return (``raw.onec.return``) carries; a partial
  1С version here would blank them.

Versions are named by the write's Idempotency-Key and the answer, so a repeated answer (1С
replays it for a repeated key) is a duplicate, not a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from mmstream.models.base import Canonical
from mmstream.models.instant_order import InstantOrder
from mmstream.models.return_ import Return
from stages.normalize.oddities import Unnormalizable, text
from stages.normalize.registry import Context

TOPICS = ("raw.onec.result",)
_GUID = "Ref_Key"


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One answer -> the versions it means (Unnormalizable names what is missing)."""
    entity = text(value.get("entity"))
    try:
        ident = UUID(text(value.get("id")))
    except ValueError:
        raise Unnormalizable(f"id: not a canonical id: {str(value.get('id'))[:60]!r}") from None
    status = text(value.get("status")) or "recorded"
    key = text(value.get("idempotency_key"))
    doc = value.get("document")
    if not key or not isinstance(doc, dict):
        raise Unnormalizable("idempotency_key and document: needed to tell answers apart")
    try:
        ref = UUID(text(doc.get("ref_key")))
    except ValueError:
        raise Unnormalizable(f"document.ref_key: not a {_GUID}") from None
    posted = doc.get("posted") is True
    answer = f"{key}:{ref}:{'posted' if posted else 'written'}"
    state = InstantOrder if entity == "instant_order" else Return if entity == "return" else None
    if state is None:
        raise Unnormalizable(f"entity: no answers of {entity!r} are expected")
    out: list[Canonical] = []
    if state is InstantOrder:
        out.append(
            InstantOrder(
                id=ident,
                source="onec",
                version=answer,
                external_ids={"onec": str(ref)},
                onec_document_id=ref,
                onec_document_kind=text(doc.get("type")),
                onec_number=text(doc.get("number")),
                onec_posted=posted,
            )
        )
    out.append(state(id=ident, source="middleware", version=f"{answer}:{status}", status=status))
    return out
