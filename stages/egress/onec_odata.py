"""Writing 1С through its standard OData interface: the egress mode for a stock УТ 11 / 10.3
that has no extension with our HTTP service (``MM_ONEC__WRITE_VIA__<FLOW>=odata``).

The flows keep their meaning; only the wire changes:

* **instant orders and returns** — the document is created with
  ``POST {odata}/Document_X`` carrying ``Ref_Key`` = our canonical id, then posted with
  ``POST Document_X(guid'…')/Post`` (``flows.post_documents``). Idempotency without
  ``Idempotency-Key``: before creating, ``GET Document_X(guid'<id>')`` looks for the
  document (look-before-create, as cash.py looks before posting); one found is ours — a
  create whose answer was lost, or a crash before the delivery was recorded — and is not
  created again. Two workers racing: 1С refuses the second create with the same Ref_Key; the
  loser reads the document again and carries on with it. A document found posted is not
  posted again. The answer published on ``raw.onec.result`` has the same shape as in the
  HTTP-service mode (courier_documents.py), so the status reaches Bitrix24 the same way.
  Entity sets: УТ 11 ``ЗаказКлиента`` (``РеализацияТоваровУслуг`` for
  ``flows.instant_order_document = shipment``) and ``ВозвратТоваровОтКлиента``; УТ 10.3
  ``ЗаказПокупателя`` and ``ВозвратТоваровОтПокупателя`` (``onec.odata_writes.configuration``;
  each overridable). Fields are the configurations' own: ``Date``, ``Контрагент_Key``,
  ``СуммаДокумента``, ``Комментарий``, ``АдресДоставки`` and the ``Товары`` tabular
  section (``LineNumber``, ``Номенклатура_Key``, ``Количество``, ``Цена``, ``Сумма``); what
  a base needs beyond that to post (organisation, warehouse, currency, a УТ 11 partner and
  agreement) is set once in ``onec.odata_writes.order_defaults`` / ``return_defaults``. A
  posting 1С refuses goes to the DLQ with 1С's words; the replay finds the unposted
  document and only posts it.

* **delivery confirmation** — a stock base has no attribute for "the courier delivered":
  the extension kept its own (``мм_СтатусДоставки``). The stock fields that exist on the
  order (УТ 11 ``ЗаказКлиента``, УТ 10.3 ``ЗаказПокупателя``) and on the shipment
  (``РеализацияТоваровУслуг``) in both configurations are the text ``Комментарий`` and,
  in УТ 11, the enum ``Статус`` — the document's own life cycle, not a delivery's (an
  order's ``СтатусыЗаказовКлиентов``, e.g. КОбеспечению, КОтгрузке, Закрыт; a shipment's
  ``СтатусыРеализацийТоваровУслуг``, e.g. Отгружено — check the values in the base's
  ``$metadata``). Changing ``Статус`` has accounting effects (``Закрыт`` ends the order's
  reserves and debts), so it is opt-in: by default the confirmation is a
  line ``[MM доставка] <task>: <status>`` appended to ``Комментарий`` with
  ``PATCH Document_X(guid'…')`` — visible in the document's list and form, harmless to its
  movements. ``onec.odata_writes.delivery_status_field`` / ``delivery_status_values`` (e.g.
  ``Статус`` with ``{"delivered": "Закрыт"}``) also set an enum field;
  ``delivery_comment_field`` names another text field (a base's own attribute). The
  document is read first: a line already there (a retry, a replay) means nothing is sent.
  An order the base does not hold is a permanent error (404 from 1С), dead-lettered.

Pure builders here; :func:`ensure_document` and :func:`confirm_delivery` do the I/O.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors.onec.client import DocumentRef, WriteResult
from connectors.onec.odata.errors import ODataError
from mmstream.settings import ODataWriteSettings

if TYPE_CHECKING:
    from connectors.onec.client import OneCClient

log = logging.getLogger(__name__)

#: Entity sets of the stock configurations (connectors/onec/objects.py names them too).
CONFIGURATION_SETS: dict[str, dict[str, str]] = {
    "ut11": {
        "order": "Document_ЗаказКлиента",
        "shipment": "Document_РеализацияТоваровУслуг",
        "return": "Document_ВозвратТоваровОтКлиента",
    },
    "ut103": {
        "order": "Document_ЗаказПокупателя",
        "shipment": "Document_РеализацияТоваровУслуг",
        "return": "Document_ВозвратТоваровОтПокупателя",
    },
}
#: The return's reference to the shipment it returns goods of, per configuration.
RETURN_SHIPMENT_FIELD = {"ut11": "ДокументРеализации_Key", "ut103": "ДокументОснование"}


def entity_sets(cfg: ODataWriteSettings) -> dict[str, str]:
    """order / shipment / return -> the entity set this base writes them to."""
    sets = dict(CONFIGURATION_SETS[cfg.configuration])
    for kind, override in (
        ("order", cfg.order_entity_set),
        ("shipment", cfg.shipment_entity_set),
        ("return", cfg.return_entity_set),
    ):
        if override:
            sets[kind] = override if override.startswith("Document_") else f"Document_{override}"
    return sets


def goods_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contract's GoodsLine list -> the ``Товары`` tabular section (1С numbers rows
    from 1, ``LineNumber`` as text)."""
    return [
        {
            "LineNumber": str(n),
            "Номенклатура_Key": line["product_id"],
            "Количество": line["quantity"],
            "Цена": line["price"],
            "Сумма": line.get("amount", line["quantity"] * line["price"]),
        }
        for n, line in enumerate(lines, start=1)
    ]


def _header(body: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    # The base's constants first: what we know of this document wins over them.
    record: dict[str, Any] = {
        **defaults,
        "Ref_Key": body["ref_key"],
        "Date": body["date"],
        "Контрагент_Key": body["counterparty_id"],
        "Товары": goods_rows(body["lines"]),
    }
    if body.get("amount") is not None:
        record["СуммаДокумента"] = body["amount"]
    if body.get("comment"):
        record["Комментарий"] = body["comment"]
    return record


def instant_order_record(body: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The HTTP service's InstantOrder body (courier_documents.instant_order_body) -> the
    OData record of the order / shipment. ``post`` is not a field: posting is ``/Post``."""
    record = _header(body, defaults)
    if body.get("delivery_address"):
        record["АдресДоставки"] = body["delivery_address"]
    return record


def return_record(
    body: dict[str, Any], defaults: dict[str, Any], configuration: str
) -> dict[str, Any]:
    """The HTTP service's Return body (courier_documents.return_body) -> the OData record."""
    record = _header(body, defaults)
    if body.get("shipment_id"):
        record[RETURN_SHIPMENT_FIELD[configuration]] = body["shipment_id"]
    return record


def write_result(
    entity_set: str,
    record: dict[str, Any],
    *,
    key: str,
    operation: str,
    replayed: bool,
    now: datetime | None = None,
) -> WriteResult:
    """What 1С's OData answer means in the HTTP-service mode's terms, so
    ``raw.onec.result`` and the status back to Bitrix24 are the same in both modes."""
    document = DocumentRef(
        type=entity_set,
        ref_key=str(record["Ref_Key"]).lower(),
        number=str(record.get("Number") or ""),
        date=str(record.get("Date") or ""),
        posted=bool(record.get("Posted")),
    )
    created_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    raw = {
        "idempotency_key": key,
        "operation": operation,
        "created_at": created_at,
        "document": {
            "type": document.type,
            "ref_key": document.ref_key,
            "number": document.number,
            "date": document.date,
            "posted": document.posted,
        },
    }
    return WriteResult(
        idempotency_key=key,
        operation=operation,
        document=document,
        created_at=created_at,
        replayed=replayed,
        raw=raw,
    )


def delivery_target(payload: dict[str, Any], sets: dict[str, str]) -> tuple[str, str]:
    """(entity set, Ref_Key) of the order or shipment a delivery task confirms (the order
    when it names both: that is where УТ keeps the customer's request)."""
    if payload.get("order_id"):
        return sets["order"], str(payload["order_id"]).lower()
    return sets["shipment"], str(payload["shipment_id"]).lower()


def delivery_line(cfg: ODataWriteSettings, task_id: str, status: str) -> str:
    """The confirmation line written to the document's text field."""
    return f"{cfg.delivery_marker} {task_id}: {status}"


def delivery_fields(
    record: dict[str, Any], cfg: ODataWriteSettings, task_id: str, status: str
) -> dict[str, Any]:
    """The fields to PATCH so the document shows this delivery's outcome; empty when it
    shows it already (a retry or a replay sends nothing)."""
    fields: dict[str, Any] = {}
    if cfg.delivery_comment_field:
        text = str(record.get(cfg.delivery_comment_field) or "")
        line = delivery_line(cfg, task_id, status)
        if line not in text.splitlines():
            fields[cfg.delivery_comment_field] = f"{text}\n{line}" if text else line
    wanted = cfg.delivery_status_values.get(status)
    if (
        cfg.delivery_status_field
        and wanted is not None
        and record.get(cfg.delivery_status_field) != wanted
    ):
        fields[cfg.delivery_status_field] = wanted
    return fields


# -- I/O ----------------------------------------------------------------------------------


async def ensure_document(
    client: OneCClient, entity_set: str, record: dict[str, Any], *, post: bool
) -> tuple[dict[str, Any], bool]:
    """Create the document unless 1С holds it already, and post it unless posted:
    (the record as 1С holds it, whether it existed before this call)."""
    ref = str(record["Ref_Key"])
    found = await client.get_document(entity_set, ref)
    existed = found is not None
    if found is None:
        try:
            found = await client.create_document(entity_set, record)
        except ODataError:
            # Another worker may have created it meanwhile (1С refuses a second object with
            # the same Ref_Key): if 1С holds it now, it is this very document.
            found = await client.get_document(entity_set, ref)
            if found is None:
                raise
            existed = True
    if post and not found.get("Posted"):
        await client.post_document(entity_set, ref)
        found = {**found, "Posted": True}
    return found, existed


async def confirm_delivery(
    client: OneCClient, cfg: ODataWriteSettings, payload: dict[str, Any], task_id: str, status: str
) -> str:
    """Record a delivery's final status on its order or shipment; its Ref_Key."""
    entity_set, ref = delivery_target(payload, entity_sets(cfg))
    record = await client.get_document(entity_set, ref)
    if record is None:
        record = {}  # the PATCH answers 1С's 404, a permanent error with 1С's words
    fields = delivery_fields(record, cfg, task_id, status)
    if fields:
        await client.update_document(entity_set, ref, fields)
    else:
        log.info(
            "1С shows the delivery already",
            extra={"entity_set": entity_set, "ref_key": ref, "task_id": task_id, "status": status},
        )
    return ref
