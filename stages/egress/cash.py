"""Cash operations (flow 4): cash receipts (ПКО), cash expenses (РКО) and advance reports that
1С holds unposted are posted through the base's standard OData interface
(``Document_X(guid'…')/Post``), and a document posted later than its date plus the SLA
(``flows.cash_sla_s``) is a deviation: ``mm_cash_sla_deviations_total`` (alert
MMCashSLADeviation) and one event on ``events.cash_sla``.

Cash documents are 1С's: the couriers' cash is written there by the cashier (or by 1С's
handler of a delivery confirmation, which carries the money collected). What the middleware
owes is that none of them stays unposted — an unposted ПКО leaves the courier's cash
unaccounted for. Posting is idempotent in 1С (a posted document is posted again, no second
movement), so a retry after a timeout is safe. A document 1С refuses to post (closed period,
marked for deletion) goes to the DLQ with 1С's words; the deviation is counted then too,
since it will not be posted in time either.

A deviation is raised once per document: the posting claims it in ``cash_sla_deviation``
(stages/egress/cash_sla.py) before publishing, and raises nothing when the SLA watch — which
raises the documents still unposted past their SLA: lagging, parked, dead-lettered — has
claimed it already (a document the watch raised and the egress then posts late is one
deviation, not two).

``mm_cash_posting_duration_seconds`` observes document date -> posted, for every document
the middleware posts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from mmstream.errors import classify
from mmstream.metrics import CASH_POSTING_LATENCY
from mmstream.retry import retry_forever
from stages.egress.actions import Targets
from stages.egress.cash_sla import claim, raise_claimed
from stages.egress.delivery import Change, Crosswalk

log = logging.getLogger(__name__)

EVENT_TOPIC = "events.cash_sla"  # the same as stages.egress.cash_sla.EVENT_TOPIC


# -- pure ---------------------------------------------------------------------------------


def needs_posting(payload: dict[str, Any]) -> bool:
    """A 1С cash document that is neither posted nor deleted (nor a deletion record)."""
    return (
        payload.get("source") == "onec"
        and not payload.get("deleted")
        and not payload.get("posted")
        and bool(payload.get("date"))
    )


def document_time(payload: dict[str, Any], tz: ZoneInfo) -> datetime:
    """The document's date as an aware time (a zone-less date is the base's wall clock)."""
    moment = datetime.fromisoformat(str(payload["date"]))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def deviation(
    payload: dict[str, Any], entity: str, *, outcome: str, at: datetime, sla_s: float, tz: ZoneInfo
) -> dict[str, Any] | None:
    """The SLA event of a document ``outcome`` (``posted`` / ``refused``) at ``at``; None
    when it was posted in time."""
    dated = document_time(payload, tz)
    took = (at - dated).total_seconds()
    if outcome == "posted" and took <= sla_s:
        return None
    return {
        "entity": entity,
        "id": str(payload["id"]),
        "number": payload.get("number") or "",
        "date": dated.isoformat(),
        "outcome": outcome,
        "at": at.isoformat(),
        "sla_s": sla_s,
        "late_by_s": round(max(took - sla_s, 0.0), 3),
        # A string, as avro/cash_sla_event.avsc says: a JSON number would round money.
        "amount": None if payload.get("amount") is None else str(payload["amount"]),
        "employee_id": payload.get("employee_id"),
    }


# -- actions ------------------------------------------------------------------------------


class _Posting:
    """Posts an unposted cash document of one kind (module docstring)."""

    target: ClassVar[str] = "onec"
    entity: ClassVar[str]
    entity_set: ClassVar[str]

    def __init__(self, targets: Targets) -> None:
        self.client = targets.onec
        self.producer = targets.producer
        self.flows = targets.settings.flows
        self.tz = ZoneInfo(targets.settings.onec.timezone)
        self.event_topic = targets.settings.topic(EVENT_TOPIC)

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Post the document; its Ref_Key. None when there is nothing to post."""
        payload = change.payload
        if not self.flows.post_cash_documents or not needs_posting(payload):
            return None
        try:
            # Look before posting: a delivery that posted and died before recording it (its
            # lease then passed to another worker) must not post the document twice.
            if not await self.client.document_posted(self.entity_set, change.entity_id):
                await self.client.post_document(self.entity_set, change.entity_id)
        except Exception as exc:
            if not classify(exc).retriable:
                await self._deviation(change, xwalk, "refused", datetime.now(UTC))
            raise
        posted_at = datetime.now(UTC)
        took = (posted_at - document_time(payload, self.tz)).total_seconds()
        CASH_POSTING_LATENCY.labels(self.entity).observe(max(took, 0.0))
        await self._deviation(change, xwalk, "posted", posted_at)
        return change.entity_id

    async def _deviation(
        self, change: Change, xwalk: Crosswalk, outcome: str, at: datetime
    ) -> None:
        event = deviation(
            change.payload,
            self.entity,
            outcome=outcome,
            at=at,
            sla_s=self.flows.cash_sla_s,
            tz=self.tz,
        )
        if event is None:
            return
        engine = xwalk.engine

        async def take() -> bool:
            async with engine.begin() as conn:
                return await claim(conn, event, "posting")

        if not await retry_forever(take, stage="egress", what="cash SLA claim", entity=self.entity):
            # Raised already: by the watch (still unposted past the SLA), or by this posting
            # before a crash (a claim left unpublished is published by the watch).
            log.info(
                "cash SLA deviation raised already",
                extra={"entity": self.entity, "entity_id": change.entity_id, "outcome": outcome},
            )
            return
        await raise_claimed(engine, self.producer, self.event_topic, event, raised_by="posting")


class CashReceiptPosting(_Posting):
    """ПКО: cash taken in (a courier handing in customers' money)."""

    entity: ClassVar[str] = "cash_receipt"
    entity_set: ClassVar[str] = "Document_ПриходныйКассовыйОрдер"


class CashExpensePosting(_Posting):
    """РКО: cash paid out (an advance to a courier)."""

    entity: ClassVar[str] = "cash_expense"
    entity_set: ClassVar[str] = "Document_РасходныйКассовыйОрдер"


class AdvanceReportPosting(_Posting):
    """Авансовый отчёт: what a courier spent of an advance."""

    entity: ClassVar[str] = "advance_report"
    entity_set: ClassVar[str] = "Document_АвансовыйОтчет"
