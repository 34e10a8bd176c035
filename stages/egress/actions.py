"""Which action delivers each egress topic, and the clients actions share.

One egress worker runs an agent per ``egress.<target>.<entity>`` topic listed here; all
agents of a worker share one Bitrix24 client (so one portal budget) and one 1С client (one
circuit breaker per base). A topic declared in ``topics.yaml`` without an action here is a
configuration error (:func:`check_coverage`), not a silently unconsumed stream.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmstream.errors import ConfigurationError
from mmstream.topics import TopicCatalog

if TYPE_CHECKING:
    from connectors.bitrix24.client import Bitrix24Client
    from connectors.onec.client import OneCClient
    from mmstream.kafka.producer import AckedProducer
    from mmstream.settings import Settings
    from stages.egress.delivery import Action

#: egress topic (logical name) -> "module:Class" of its action. Imported lazily so the
#: worker only loads what it runs.
ACTIONS: dict[str, str] = {
    "egress.bitrix24.product": "stages.egress.bitrix24_product:ProductAction",
    # -- flow 1: master data 1С -> Bitrix24 --
    "egress.bitrix24.counterparty": "stages.egress.bitrix24_master:CounterpartyAction",
    "egress.bitrix24.warehouse": "stages.egress.bitrix24_master:WarehouseAction",
    "egress.bitrix24.price_type": "stages.egress.bitrix24_master:PriceTypeAction",
    "egress.bitrix24.price": "stages.egress.bitrix24_master:PriceAction",
    "egress.bitrix24.employee": "stages.egress.bitrix24_master:EmployeeAction",
    "egress.bitrix24.stock": "stages.egress.bitrix24_stock:StockAction",
    # -- flow 2: deliveries --
    "egress.bitrix24.delivery_task": "stages.egress.deliveries:DeliveryTaskAction",
    "egress.onec.delivery_task": "stages.egress.deliveries:DeliveryConfirmation",
    # -- flow 3: instant orders and returns --
    "egress.onec.instant_order": "stages.egress.courier_documents:InstantOrderToOneC",
    "egress.bitrix24.instant_order": "stages.egress.courier_documents:InstantOrderStatus",
    "egress.onec.return": "stages.egress.courier_documents:ReturnToOneC",
    "egress.bitrix24.return": "stages.egress.courier_documents:ReturnStatus",
    "egress.stock.instant_order": "stages.egress.bitrix24_stock:InstantOrderReservation",
    # -- flow 4: cash operations --
    "egress.onec.cash_receipt": "stages.egress.cash:CashReceiptPosting",
    "egress.onec.cash_expense": "stages.egress.cash:CashExpensePosting",
    "egress.onec.advance_report": "stages.egress.cash:AdvanceReportPosting",
}


#: egress topics whose 1С side is selectable per flow (``onec.write_via``): topic ->
#: (the ``OneCWriteVia`` field, {mode: "module:Class"}). ``http_service`` is ACTIONS' entry.
WRITE_MODES: dict[str, tuple[str, dict[str, str]]] = {
    "egress.onec.delivery_task": (
        "delivery_status",
        {"odata": "stages.egress.deliveries:DeliveryConfirmationOData"},
    ),
    "egress.onec.instant_order": (
        "instant_order",
        {
            "odata": "stages.egress.courier_documents:InstantOrderToOneCOData",
            "commerceml": "stages.egress.commerceml_orders:InstantOrderToExchange",
        },
    ),
    "egress.onec.return": (
        "returns",
        {
            "odata": "stages.egress.courier_documents:ReturnToOneCOData",
            "commerceml": "stages.egress.commerceml_orders:ReturnToExchange",
        },
    ),
}


def action_ref(topic: str, settings: Settings) -> str:
    """``module:Class`` of the action delivering ``topic`` under these settings: the
    flow's ``onec.write_via`` mode where it has one, else ACTIONS' entry."""
    try:
        ref = ACTIONS[topic]
    except KeyError:
        raise ConfigurationError(
            f"no egress action for topic {topic}: add it to stages/egress/actions.py ACTIONS"
        ) from None
    if topic in WRITE_MODES:
        field, modes = WRITE_MODES[topic]
        mode = getattr(settings.onec.write_via, field)
        if mode != "http_service":
            if mode not in modes:
                raise ConfigurationError(
                    f"MM_ONEC__WRITE_VIA__{field.upper()}={mode} is not "
                    f"offered for {topic} (choose from http_service, "
                    f"{', '.join(modes)})"
                )
            ref = modes[mode]
    return ref


@dataclass
class Targets:
    """What actions call: the target clients of this worker, its producer (for events
    such as SLA deviations) and the settings."""

    settings: Settings
    bitrix24: Bitrix24Client
    onec: OneCClient
    producer: AckedProducer


def action_for(topic: str, targets: Targets) -> Action:
    """The action delivering egress topic ``topic`` (logical name). The module is imported
    only now, so a mode's module (commerceml_orders) is needed only where it is chosen."""
    ref = action_ref(topic, targets.settings)
    module, _, name = ref.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"the action {ref} chosen for {topic} cannot be loaded: {exc}"
        ) from exc
    return cls(targets)


def egress_topics(catalog: TopicCatalog) -> list[str]:
    """The declared egress topics (logical names), in file order."""
    return [name for name, spec in catalog.topics.items() if spec.role == "egress"]


def uncovered(catalog: TopicCatalog) -> tuple[list[str], list[str]]:
    """(declared egress topics without an action, actions without a declared topic)."""
    declared = set(egress_topics(catalog))
    return sorted(declared - ACTIONS.keys()), sorted(ACTIONS.keys() - declared)


def check_coverage(catalog: TopicCatalog) -> None:
    """Refuse a topic file whose egress topics do not all have an action (and the reverse):
    an egress topic nobody consumes would look healthy while nothing reaches the target."""
    missing, unknown = uncovered(catalog)
    if missing or unknown:
        raise ConfigurationError(
            "egress topics and actions disagree: "
            + (f"no action for {missing} (stages/egress/actions.py); " if missing else "")
            + (f"no topic for {unknown} (topics.yaml)" if unknown else "")
        )
