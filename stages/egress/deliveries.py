"""Deliveries (flow 2): the delivery tasks the middleware keeps, shown to couriers in Bitrix24
and confirmed to 1С.

* :class:`DeliveryTaskAction` -> Bitrix24: a task (``tasks.task``) or, when the portal keeps
  deliveries in a smart process (``couriers.delivery_entity_type_id``), an item
  (``crm.item``), keyed by our canonical id in ``XML_ID`` / ``xmlId`` and looked up by it
  before any create, so a retry after a timeout never makes a second task. Only 1С's versions
  are written (the order data: address, amount, window, deletion): the courier's own changes
  come from Bitrix24, and echoing them back would be a loop. The responsible user is set on
  creation only (``flows.delivery_responsible_id``, a dispatcher); assigning a courier is
  done in Bitrix24 and is never overwritten.
* :class:`DeliveryConfirmation` -> 1С: when the middleware's status of a task becomes final
  (delivered, failed, cancelled) it is recorded on the order or shipment through the HTTP
  service, with ``Idempotency-Key`` ``delivery:<task>:<status>``: a repeat answers the first
  result; a later change of the task with the same status changes nothing in 1С.
  :class:`DeliveryConfirmationOData` does the same for a stock base without the extension
  (``onec.write_via.delivery_status = odata``): the outcome is written with ``PATCH`` to the
  order's or shipment's own fields — which ones and why: stages/egress/onec_odata.py.

The field mappings are pure functions; the actions do the I/O.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from connectors.bitrix24.errors import InvalidRequest
from connectors.onec.client import onec_datetime
from mmstream.errors import PermanentError
from stages.egress import onec_odata
from stages.egress.actions import Targets
from stages.egress.delivery import Change, Crosswalk
from stages.egress.relink import LinkState, claim, describe, link_state
from stages.egress.values import currency, money

log = logging.getLogger(__name__)

#: Statuses of a delivery that 1С is told about.
FINAL = ("delivered", "failed", "cancelled")
#: tasks.task status code of a deferred task: where a delivery whose order was deleted goes.
TASK_DEFERRED = "6"


class DeliveryNotDescribed(PermanentError):
    """The delivery task names neither an order nor a shipment, so 1С cannot be told which
    document it confirms. Fix the task's source document in 1С, then replay the record."""

    code = "delivery_not_described"


# -- pure mapping -------------------------------------------------------------------------


def upper_field(name: str) -> str:
    """``xmlId`` -> ``XML_ID``: tasks.task.add takes UPPER_CASE fields, get answers camelCase.
    A name given in UPPER_CASE already stays as it is."""
    if name.upper() == name:
        return name
    out = "".join(f"_{c}" if c.isupper() else c.upper() for c in name)
    return out.lstrip("_")


def camel_field(name: str) -> str:
    """``XML_ID`` -> ``xmlId``: the name ``tasks.task.get`` answers a field by. A name given
    in camelCase already stays as it is."""
    if name.upper() != name:
        return name
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def money_text(amount: Any) -> str:
    """``1500.5`` -> ``1500.50``; empty for no amount."""
    if amount in (None, ""):
        return ""
    return f"{Decimal(str(amount)):.2f}"


def window_text(start: str | None, end: str | None) -> str:
    """The planned window as couriers read it."""
    if start and end:
        return f"{start} — {end}"
    return start or end or ""


def task_title(payload: dict[str, Any]) -> str:
    """The task's title: the 1С document number and the address."""
    number = str(payload.get("number") or "").strip() or "без номера"
    address = str(payload.get("delivery_address") or "").strip()
    return f"Доставка {number}" + (f": {address}" if address else "")


def task_description(payload: dict[str, Any]) -> str:
    """What the courier needs to know, one line each (empty lines left out)."""
    lines = [
        ("Адрес", payload.get("delivery_address") or ""),
        ("Получить с клиента", money_text(payload.get("amount_to_collect"))),
        ("Окно доставки", window_text(payload.get("planned_from"), payload.get("planned_to"))),
        ("Документ 1С", payload.get("number") or ""),
    ]
    return "\n".join(f"{label}: {value}" for label, value in lines if value)


def task_fields(
    payload: dict[str, Any], id_field: str, *, responsible_id: int | None = None
) -> dict[str, Any]:
    """Canonical delivery task -> ``tasks.task.add/update`` fields (UPPER_CASE)."""
    fields: dict[str, Any] = {
        "TITLE": task_title(payload),
        "DESCRIPTION": task_description(payload),
        upper_field(id_field): str(payload["id"]),
    }
    deadline = payload.get("planned_to") or payload.get("planned_from")
    if deadline:
        fields["DEADLINE"] = deadline
    if responsible_id is not None:
        fields["RESPONSIBLE_ID"] = responsible_id
    return fields


def item_fields(
    payload: dict[str, Any], id_field: str, *, assigned_by_id: int | None = None
) -> dict[str, Any]:
    """Canonical delivery task -> ``crm.item.add/update`` fields (camelCase)."""
    fields: dict[str, Any] = {"title": task_title(payload), id_field: str(payload["id"])}
    if assigned_by_id is not None:
        fields["assignedById"] = assigned_by_id
    return fields


def confirmation_body(
    payload: dict[str, Any], tz: ZoneInfo, *, now: datetime | None = None
) -> dict[str, Any]:
    """Canonical delivery task -> the contract's DeliveryStatus. ``occurred_at`` is when the
    courier reported the outcome (else now); the money collected goes with a delivery."""
    status = payload["status"]
    if not (payload.get("order_id") or payload.get("shipment_id")):
        raise DeliveryNotDescribed(
            f"delivery task {payload.get('id')} names no order or "
            "shipment: 1С cannot be told which document it confirms"
        )
    moment = payload.get("delivered_at") if status == "delivered" else payload.get("failed_at")
    occurred = datetime.fromisoformat(moment) if moment else (now or datetime.now(UTC))
    body: dict[str, Any] = {"status": status, "occurred_at": onec_datetime(occurred, tz)}
    for name in ("order_id", "shipment_id"):
        if payload.get(name):
            body[name] = str(payload[name])
    if payload.get("courier_comment"):
        body["comment"] = str(payload["courier_comment"])[:1024]
    collected = money(payload.get("collected_amount"))
    if status == "delivered" and collected is not None:
        body["collected_amount"] = collected
        body["currency"] = currency(payload.get("collected_currency"))
    return body


def parse_record_key(key: str | None) -> tuple[str, int | None, int] | None:
    """``task:42`` -> (task, None, 42); ``item:140:42`` -> (item, 140, 42); else None."""
    parts = (key or "").split(":")
    if len(parts) == 2 and parts[0] == "task" and parts[1].isdigit():
        return "task", None, int(parts[1])
    if len(parts) == 3 and parts[0] == "item" and parts[1].isdigit() and parts[2].isdigit():
        return "item", int(parts[1]), int(parts[2])
    return None


# -- actions ------------------------------------------------------------------------------


class DeliveryTaskAction:
    """A delivery task as the courier's Bitrix24 task or smart-process item (module docstring).
    Returns the record key, ``task:42`` / ``item:140:42`` (what the Bitrix24 normalizers
    write to the crosswalk too)."""

    target: ClassVar[str] = "bitrix24"
    entity: ClassVar[str] = "delivery_task"

    def __init__(self, targets: Targets) -> None:
        self.client = targets.bitrix24
        self.couriers = targets.settings.bitrix24.couriers
        self.flows = targets.settings.flows

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Create or update the courier's task; its record key."""
        payload = change.payload
        # A reconcile repair (stages/outbox/restate.py REPAIR_MARK) re-states the whole row,
        # 1С's order data included, whoever wrote its last version: it is written.
        if payload.get("source") != "onec" and not payload.get("mm_reconcile_run"):
            return await self._catch_up(change, xwalk)
        known = await xwalk.external_id(self.entity, self.target, change.entity_id)
        type_id = self.couriers.delivery_entity_type_id
        parsed = parse_record_key(known)
        if parsed is not None:
            # Read before writing (stages/egress/relink.py): the task may be gone (a user
            # deleted it, the portal was reset) or its id may now hold another task (a reset
            # portal reissues ids) — updating or deferring that one would overwrite a
            # stranger's task.
            row = await self._read(parsed)
            state = link_state(row, self._key_field(parsed), change.entity_id)
            if state is LinkState.OURS:
                if change.deleted:
                    await self._defer(parsed)
                    return known
                try:
                    await self._update(payload, parsed)
                    return known
                except InvalidRequest:
                    if await self._read(parsed) is not None:
                        raise  # the portal refused the fields: a real error
                    state = LinkState.GONE  # deleted between our read and our write
                    row = None
            log.warning(
                describe(
                    state, self.entity, change.entity_id, str(known), row, self._key_field(parsed)
                )
            )
        if change.deleted:
            # Nothing of ours to defer. A task found by our key (created by an attempt whose
            # answer was lost) is deferred all the same.
            found = await self._find(change.entity_id, type_id)
            if found is None:
                return None
            await claim(xwalk, self.entity, self.target, change.entity_id, found)
            found_parsed = parse_record_key(found)
            assert found_parsed is not None
            await self._defer(found_parsed)
            return found
        # Look up by our key before any create: a retry after a lost answer (or a relink after
        # a reset) finds the task an earlier attempt created instead of making a second one.
        known = await self._find(change.entity_id, type_id)
        if known is not None:
            await claim(xwalk, self.entity, self.target, change.entity_id, known)
            found_parsed = parse_record_key(known)
            assert found_parsed is not None
            await self._update(payload, found_parsed)
            return known
        known = await self._create(payload, type_id)
        await claim(xwalk, self.entity, self.target, change.entity_id, known)
        return known

    async def _catch_up(self, change: Change, xwalk: Crosswalk) -> str | None:
        """A change the courier or the middleware made (a status): nothing of its own is
        written back. But it carries the whole row, 1С's order data included, and that data
        may not be at the task: when 1С's own change was dead-lettered (a target storm), this
        later change is released past it, and a replay of 1С's change is then skipped as
        superseded. So the task's 1С-owned fields are read and written when they differ;
        the echo of that write, or of any write of ours, compares equal: no loop."""
        payload = change.payload
        if change.deleted or not (payload.get("order_id") or payload.get("shipment_id")):
            return None  # never stated by 1С: nothing of 1С's to bring over
        known = await xwalk.external_id(self.entity, self.target, change.entity_id)
        parsed = parse_record_key(known)
        if parsed is None:
            return None  # not linked: the task is made by 1С's change (or its replay)
        row = await self._read(parsed, content=True)
        if link_state(row, self._key_field(parsed), change.entity_id) is not LinkState.OURS:
            return None  # gone or relinked: 1С's change (or its replay) repairs the link
        assert row is not None
        if not self._differs(row, payload, parsed):
            return None
        await self._update(payload, parsed)
        return known

    def _differs(
        self, row: dict[str, Any], payload: dict[str, Any], parsed: tuple[str, int | None, int]
    ) -> bool:
        """Whether the task or item at the portal lacks the 1С data of ``payload``."""
        if parsed[0] == "task":
            want = task_fields(payload, self.couriers.task_id_field)
            return any(
                str(row.get(camel_field(name)) or "") != str(want[name])
                for name in ("TITLE", "DESCRIPTION")
            )
        return str(row.get("title") or "") != task_title(payload)

    def _key_field(self, parsed: tuple[str, int | None, int]) -> str:
        """Where our canonical id sits in a ``*.get`` answer (camelCase, as both answer)."""
        if parsed[0] == "task":
            return camel_field(self.couriers.task_id_field)
        return self.couriers.delivery_item_id_field

    async def _read(
        self, parsed: tuple[str, int | None, int], *, content: bool = False
    ) -> dict[str, Any] | None:
        """The task or item at a record key; None when the portal has none there.
        ``content``: with the task's title and description (an item answers all its fields)."""
        kind, type_id, number = parsed
        if kind == "task":
            select = ["ID", upper_field(self.couriers.task_id_field)]
            if content:
                select += ["TITLE", "DESCRIPTION"]
            # tasks.task.get answers an empty result for a task that does not exist.
            got = await self.client.call("tasks.task.get", {"taskId": number, "select": select})
            task = got.get("task") if isinstance(got, dict) else None
            return task or None
        try:
            got = await self.client.call("crm.item.get", {"entityTypeId": type_id, "id": number})
        except InvalidRequest:
            return None  # crm.item.get answers NOT_FOUND for an item that does not exist
        item = got.get("item") if isinstance(got, dict) else None
        return item or None

    async def _find(self, ident: str, type_id: int | None) -> str | None:
        if type_id is None:
            found = await self.client.call(
                "tasks.task.list",
                {"filter": {upper_field(self.couriers.task_id_field): ident}, "select": ["ID"]},
            )
            tasks = (found or {}).get("tasks") or []
            return f"task:{int(tasks[0]['id'])}" if tasks else None
        found = await self.client.call(
            "crm.item.list",
            {
                "entityTypeId": type_id,
                "filter": {self.couriers.delivery_item_id_field: ident},
                "select": ["id"],
            },
        )
        items = (found or {}).get("items") or []
        return f"item:{type_id}:{int(items[0]['id'])}" if items else None

    async def _create(self, payload: dict[str, Any], type_id: int | None) -> str:
        responsible = self.flows.delivery_responsible_id
        if type_id is None:
            added = await self.client.call(
                "tasks.task.add",
                {
                    "fields": task_fields(
                        payload, self.couriers.task_id_field, responsible_id=responsible
                    )
                },
            )
            return f"task:{int(added['task']['id'])}"
        added = await self.client.call(
            "crm.item.add",
            {
                "entityTypeId": type_id,
                "fields": item_fields(
                    payload, self.couriers.delivery_item_id_field, assigned_by_id=responsible
                ),
            },
        )
        return f"item:{type_id}:{int(added['item']['id'])}"

    async def _update(self, payload: dict[str, Any], parsed: tuple[str, int | None, int]) -> None:
        kind, type_id, number = parsed
        if kind == "task":
            await self.client.call(
                "tasks.task.update",
                {"taskId": number, "fields": task_fields(payload, self.couriers.task_id_field)},
            )
        else:
            await self.client.call(
                "crm.item.update",
                {
                    "entityTypeId": type_id,
                    "id": number,
                    "fields": item_fields(payload, self.couriers.delivery_item_id_field),
                },
            )

    async def _defer(self, parsed: tuple[str, int | None, int]) -> None:
        # The order was deleted in 1С: the task is deferred, not deleted, so what the courier
        # already did (comments, money) stays readable in Bitrix24.
        kind, type_id, number = parsed
        if kind == "task":
            await self.client.call(
                "tasks.task.update", {"taskId": number, "fields": {"STATUS": TASK_DEFERRED}}
            )
        else:
            await self.client.call(
                "crm.item.update",
                {
                    "entityTypeId": type_id,
                    "id": number,
                    "fields": {"stageId": f"DT{type_id}_1:FAIL"},
                },
            )


class DeliveryConfirmation:
    """The final status of a delivery, recorded in 1С on its order or shipment (module
    docstring). Returns the Ref_Key of the document 1С recorded it on."""

    target: ClassVar[str] = "onec"
    entity: ClassVar[str] = "delivery_task"

    def __init__(self, targets: Targets) -> None:
        self.client = targets.onec
        self.tz = ZoneInfo(targets.settings.onec.timezone)

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Confirm a final status to 1С; None while the delivery goes on."""
        payload = change.payload
        status = payload.get("status")
        if change.deleted or status not in FINAL:
            return None
        body = confirmation_body(payload, self.tz)
        result = await self.client.confirm_delivery(
            f"delivery:{change.entity_id}:{status}", change.entity_id, body
        )
        return result.document.ref_key


class DeliveryConfirmationOData(DeliveryConfirmation):
    """The final status of a delivery written to its order or shipment through the
    standard OData interface (``PATCH``, read first so a repeat sends nothing)."""

    def __init__(self, targets: Targets) -> None:
        super().__init__(targets)
        self.odata_writes = targets.settings.onec.odata_writes

    async def apply(self, change: Change, xwalk: Crosswalk) -> str | None:
        """Confirm a final status to 1С; None while the delivery goes on."""
        payload = change.payload
        status = payload.get("status")
        if change.deleted or status not in FINAL:
            return None
        confirmation_body(payload, self.tz)  # the same checks: it must name its document
        return await onec_odata.confirm_delivery(
            self.client, self.odata_writes, payload, change.entity_id, str(status)
        )
