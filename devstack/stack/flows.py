"""The four business flows as the status line and page count them: what completed at the target.

* master: master-data changes (products, counterparties, prices...) written to Bitrix24, from
  the egress workers' ``mm_egress_deliveries_total{target="bitrix24",outcome="delivered"}``;
* deliveries: courier deliveries confirmed in 1С as delivered,
* instant orders / returns: courier deals recorded as 1С documents,
* cash: cash documents (ПКО, РКО, advance reports) posted in 1С,
  the last three from the 1С emulator's own state. The egress metrics would over-count them:
  every change of a task or deal is delivered again (idempotently, the same 1С operation),
  and a task's intermediate states count as deliveries too.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

FLOWS = ("master", "deliveries", "instant orders", "returns", "cash")
_DELIVERED = "mm_egress_deliveries_total"
# Writes to Bitrix24 that belong to the courier flows (the task, the status back on a deal).
_COURIER_BITRIX24 = frozenset({"delivery_task", "instant_order", "return"})
_CASH_SETS = (
    "Document_ПриходныйКассовыйОрдер",
    "Document_РасходныйКассовыйОрдер",
    "Document_АвансовыйОтчет",
)
_ODATA = "/trade/odata/standard.odata/"


def master_count(samples: Iterable) -> float:
    """Master-data changes delivered to Bitrix24, from parsed metric samples of every worker."""
    return sum(
        s.value
        for s in samples
        if s.name == _DELIVERED
        and s.labels.get("outcome") == "delivered"
        and s.labels.get("target") == "bitrix24"
        and s.labels.get("entity") not in _COURIER_BITRIX24
    )


def courier_counts(operations: list[dict], cash_documents: list[dict]) -> dict[str, float]:
    """Deliveries, instant orders, returns and cash from the 1С emulator's operations (one per
    Idempotency-Key) and cash documents."""
    done = [
        op.get("operation")
        for op in operations
        if op.get("operation") != "delivery_status" or op.get("delivery_status") == "delivered"
    ]
    return {
        "deliveries": float(done.count("delivery_status")),
        "instant orders": float(done.count("instant_order")),
        "returns": float(done.count("return")),
        "cash": float(sum(1 for doc in cash_documents if doc.get("Posted") is True)),
    }


def flow_counts(samples: Iterable, courier: dict[str, float] | None = None) -> dict[str, float]:
    """Every flow's count: master from the metrics, the others from ``courier`` (0 if unknown)."""
    return {"master": master_count(samples), **{f: (courier or {}).get(f, 0.0) for f in FLOWS[1:]}}


def flows_text(counts: dict[str, float]) -> str:
    """``master N | deliveries N | instant orders N | returns N | cash N``."""
    return " | ".join(f"{flow} {counts.get(flow, 0.0):.0f}" for flow in FLOWS)


class CourierProbe:
    """Reads the 1С emulator's state; keeps the last answer while the emulator does not answer."""

    def __init__(self, onec_url: str | None) -> None:
        self.onec_url = onec_url
        self.last: dict[str, float] = {}

    async def counts(self, client: httpx.AsyncClient) -> dict[str, float]:
        if not self.onec_url:
            return self.last
        try:
            operations = (await client.get(f"{self.onec_url}/_emulator/operations")).json()
            cash: list[dict] = []
            for entity_set in _CASH_SETS:
                resp = await client.get(
                    f"{self.onec_url}{_ODATA}{entity_set}", params={"$format": "json"}
                )
                if resp.status_code == 200:
                    cash += resp.json().get("value", [])
            self.last = courier_counts(operations, cash)
        except (httpx.HTTPError, ValueError, AttributeError):
            pass  # starting or gone: the last figures stand
        return self.last
