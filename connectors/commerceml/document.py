"""A whole CommerceML file -> its records, and the validation pass that precedes publishing.

Publishing a file is two passes over it: :func:`check` reads everything and refuses the
file if any entry is invalid (so a bad file publishes nothing), then :func:`records`
reads it again and yields the records. Both stream; neither holds the file in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from connectors.commerceml.errors import DocumentRejected, InvalidEntry
from connectors.commerceml.orders import order_record
from connectors.commerceml.parser import Context, Entry, Readable, entries
from connectors.commerceml.raw_records import (
    Record,
    offer_records,
    price_type_record,
    product_record,
)

MAX_PROBLEMS = 10


def entry_records(entry: Entry) -> list[Record]:
    """The records of one entry (an offer gives zero or more, the others exactly one)."""
    # Every kind the parser yields is handled here: an entry never vanishes unread.
    if entry.kind == "product":
        return [product_record(entry)]
    if entry.kind == "offer":
        return offer_records(entry)
    if entry.kind == "price_type":
        return [price_type_record(entry)]
    return [order_record(entry)]


def records(stream: Readable, ctx: Context | None = None) -> Iterator[Record]:
    """Every record of the document, in document order. ``ctx``: the names declared by
    earlier files of the exchange (connectors/commerceml/context.py), filled in place with
    this document's own declarations as they are read."""
    for entry in entries(stream, ctx):
        yield from entry_records(entry)


@dataclass
class Summary:
    """What a document holds: sections, entries by kind, records by entity."""

    sections: list[str] = field(default_factory=list)
    entries: Counter = field(default_factory=Counter)
    records: Counter = field(default_factory=Counter)
    # Offers with neither prices nor stock (e.g. the product-like offers of some "import.xml"
    # files): they give no record, and the log says how many there were.
    empty_offers: int = 0
    # The classifier (else catalog) Ид the document names, whether it holds only changes,
    # and whether it holds a whole classifier: which stored names it relies on and updates.
    catalog: str = ""
    changes_only: bool = False
    full_classifier: bool = False

    def as_log(self) -> dict:
        """A flat dict for a structured log line."""
        return {
            "sections": self.sections,
            "entries": dict(self.entries),
            "records": dict(self.records),
            "empty_offers": self.empty_offers,
            "catalog": self.catalog,
            "changes_only": self.changes_only,
        }


def check(stream: Readable) -> Summary:
    """Read the whole document; DocumentRejected listing the first problems if any entry is
    invalid, InvalidDocument if the file is not a CommerceML document."""
    summary = Summary()
    ctx = Context()
    problems: list[str] = []
    invalid = 0
    for entry in entries(stream, ctx):
        summary.entries[entry.kind] += 1
        try:
            out = entry_records(entry)
        except InvalidEntry as exc:
            invalid += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(str(exc))
            continue
        if entry.kind == "offer" and not out:
            summary.empty_offers += 1
        summary.records.update(r.entity for r in out)
    summary.sections = ctx.sections
    summary.catalog, summary.changes_only = ctx.catalog_key, ctx.changes_only
    summary.full_classifier = ctx.full_classifier
    if ctx.stray_documents:
        places = sorted(set(ctx.stray_documents))
        raise DocumentRejected(
            f"{len(ctx.stray_documents)} <Документ> element(s) at a place no CommerceML layout "
            f"puts orders ({', '.join(places[:3])}); nothing was published",
            places[:MAX_PROBLEMS],
        )
    if invalid:
        raise DocumentRejected(
            f"{invalid} of {sum(summary.entries.values())} entries are invalid; "
            f"nothing was published. First: {'; '.join(problems)}",
            problems,
        )
    return summary
