"""1С side of the reconcile for the operational documents: what PostgreSQL says 1С holds,
read back over OData by our ids.

* **instant orders and returns** (flow 3): the documents the egress creates in 1С from a
  courier's won deal carry our canonical id as their ``Ref_Key``
  (stages/egress/courier_documents.py, in every write mode), so 1С is asked for exactly
  those ids. A document 1С answered for (status ``recorded``) must be there, not marked for
  deletion, and show the number and posted flag we recorded; a won deal with no answer yet
  and no document is a document *missing* in 1С (the change was lost before egress); a
  document 1С holds for a deal we never recorded an answer for is a lost answer (*differs*
  in ``status``).
* **cash documents** (flow 4: ПКО, РКО, advance reports) are 1С's: what we hold of each
  (``posted``, ``number``, ``amount``) must be what 1С holds now, and a document 1С no longer
  has (deleted: OData keeps no tombstone) must not stay live here.

Reads by key, :data:`KEYS_PER_QUERY` ids a request (``Ref_Key eq guid'…' or …``), never a
scan of the document journals, so the cost follows our rows, not the base's history.

How each drift is repaired (stages/reconcile/job.py applies it; never a write to 1С
around the pipeline):

* ``missing`` — re-published from PostgreSQL (an outbox entry): the egress creates the
  document, looking for it by Ref_Key first;
* ``differs`` / a cash document ``deleted`` — the 1С side read again and published as the
  pipeline would have received it: an instant order's or return's answer on
  ``raw.onec.result`` (as the egress publishes it), a cash document's record (or, when it
  vanished, the deletion record the OData poller publishes) on its raw topic;
* an instant order's or return's document ``deleted`` in 1С is left to people: deleting an
  accounting document is a decision made in 1С, the HTTP service answers a repeated write
  with its first result, and recreating it behind the accountant's back would undo that
  decision (runbook: "deleted — a 1С document").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stages.egress.courier_documents import DONE, deal_id, ready_for_onec
from stages.reconcile.drift import Drift, field_diff

TARGET = "onec"
#: Ids per OData query (a ``$filter`` of ``or``-ed key terms; 1С's URL limit stays far away).
KEYS_PER_QUERY = 20


@dataclass(frozen=True)
class Expected:
    """What 1С should hold of one of our rows."""

    id: str
    ref: str
    entity_set: str
    #: 1С field -> our value (compared when the document is there).
    fields: Mapping[str, Any]
    #: True: 1С must hold it (answered, or 1С's own document); False: it should be there
    #: soon (the deal is won) — absent, it is ``missing``.
    answered: bool = True
    #: The version PostgreSQL holds (for the deletion record of a vanished cash document).
    version: str = ""


@dataclass(frozen=True)
class DocSpec:
    """How one canonical entity is compared with 1С."""

    entity: str
    table: str
    #: canonical row (JSON) -> what 1С should hold, or None when nothing is judged.
    expect: Callable[[dict[str, Any]], Expected | None]
    #: kind -> repair: ``republish`` | ``result`` (publish 1С's answer) | ``reread`` (the
    #: 1С record on its raw topic) | ``unresolved``.
    repairs: Mapping[str, str]


def _set(name: str) -> str:
    name = str(name or "")
    return name if name.startswith("Document_") else f"Document_{name}"


def instant_order_spec(sets: Mapping[str, str], document: str) -> DocSpec:
    """Instant orders; ``sets``: order / shipment / return -> entity set of this base;
    ``document``: the kind of document an instant order becomes (flows.instant_order_document)."""

    def expect(row: dict[str, Any]) -> Expected | None:
        if row.get("deleted") or deal_id(row) is None:
            return None
        ident = str(row["id"])
        answered = row.get("status") in DONE or bool(row.get("onec_document_id"))
        if not answered:
            if not ready_for_onec(row, "stage"):
                return None
            return Expected(ident, ident, sets[document], {}, answered=False)
        fields: dict[str, Any] = {}
        if row.get("onec_document_id"):  # 1С's own version of it reached us
            fields = {
                "Number": row.get("onec_number") or "",
                "Posted": bool(row.get("onec_posted")),
            }
        kind = row.get("onec_document_kind")
        return Expected(
            ident,
            str(row.get("onec_document_id") or ident),
            _set(kind) if kind else sets[document],
            fields,
        )

    return DocSpec(
        "instant_order",
        "instant_order",
        expect,
        {"missing": "republish", "differs": "result", "deleted": "unresolved"},
    )


def return_spec(sets: Mapping[str, str]) -> DocSpec:
    """Returns a courier started in Bitrix24 (those born in 1С are 1С's own)."""

    def expect(row: dict[str, Any]) -> Expected | None:
        if row.get("deleted") or deal_id(row) is None:
            return None
        ident = str(row["id"])
        if row.get("status") not in DONE:
            if not ready_for_onec(row, "courier_stage"):
                return None
            return Expected(ident, ident, sets["return"], {}, answered=False)
        fields: dict[str, Any] = {}
        if row.get("number"):  # 1С's version of the document reached us
            fields = {"Number": row.get("number") or "", "Posted": bool(row.get("posted"))}
        return Expected(ident, ident, sets["return"], fields)

    return DocSpec(
        "return",
        "return",
        expect,
        {"missing": "republish", "differs": "result", "deleted": "unresolved"},
    )


def cash_spec(entity: str, entity_set: str) -> DocSpec:
    """A cash document kind: 1С's documents, as we hold them."""

    def expect(row: dict[str, Any]) -> Expected | None:
        if row.get("deleted") or row.get("source") != "onec":
            return None
        ident = str(row["id"])
        return Expected(
            ident,
            ident,
            entity_set,
            {
                "Posted": bool(row.get("posted")),
                "Number": row.get("number") or "",
                "СуммаДокумента": row.get("amount"),
            },
            version=str(row.get("version") or ""),
        )

    return DocSpec(entity, entity, expect, {"differs": "reread", "deleted": "reread"})


CASH_SETS = {
    "cash_receipt": "Document_ПриходныйКассовыйОрдер",
    "cash_expense": "Document_РасходныйКассовыйОрдер",
    "advance_report": "Document_АвансовыйОтчет",
}


def specs(sets: Mapping[str, str], instant_order_document: str) -> dict[str, DocSpec]:
    """The operational documents compared with 1С, by canonical entity name."""
    return {
        "instant_order": instant_order_spec(sets, instant_order_document),
        "return": return_spec(sets),
        **{entity: cash_spec(entity, name) for entity, name in CASH_SETS.items()},
    }


def classify(
    entity: str, expected: Iterable[Expected], found: Mapping[str, Mapping[str, Any]]
) -> list[Drift]:
    """Drift between our rows and 1С's documents ``found`` (Ref_Key, lower case -> record)."""
    out: list[Drift] = []
    for exp in expected:
        doc = found.get(exp.ref.lower())
        if doc is None:
            if exp.answered:
                out.append(
                    Drift(
                        entity,
                        TARGET,
                        "deleted",
                        exp.id,
                        exp.ref,
                        f"{exp.entity_set} {exp.ref} is gone from 1С",
                    )
                )
            else:
                out.append(
                    Drift(
                        entity,
                        TARGET,
                        "missing",
                        exp.id,
                        None,
                        f"the deal is won; 1С has no {exp.entity_set} {exp.ref}",
                    )
                )
            continue
        if doc.get("DeletionMark") is True:
            out.append(
                Drift(
                    entity,
                    TARGET,
                    "deleted",
                    exp.id,
                    exp.ref,
                    f"{exp.entity_set} {exp.ref} is marked for deletion in 1С",
                )
            )
            continue
        if not exp.answered:
            out.append(
                Drift(
                    entity,
                    TARGET,
                    "differs",
                    exp.id,
                    exp.ref,
                    "1С holds the document; its answer never reached us",
                    {"status": {"ours": "new", "theirs": "recorded"}},
                )
            )
            continue
        diff = field_diff(exp.fields, doc)
        if diff:
            out.append(
                Drift(
                    entity,
                    TARGET,
                    "differs",
                    exp.id,
                    exp.ref,
                    "fields differ: " + ", ".join(sorted(diff)),
                    diff,
                )
            )
    return out


def key_query(refs: list[str]) -> str:
    """The ``$filter`` selecting these documents by Ref_Key."""
    return " or ".join(f"Ref_Key eq guid'{ref}'" for ref in refs)


async def read_documents(
    odata: Any, entity_set: str, refs: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """1С's documents with these Ref_Keys (lower case -> record), :data:`KEYS_PER_QUERY` a
    request. A vanished document is simply not in the answer."""
    refs = sorted({r.lower() for r in refs})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(refs), KEYS_PER_QUERY):
        chunk = refs[start : start + KEYS_PER_QUERY]
        for doc in await odata.query(entity_set, filter=key_query(chunk), top=len(chunk)):
            if doc.get("Ref_Key"):
                found[str(doc["Ref_Key"]).lower()] = doc
    return found
