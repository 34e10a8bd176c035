"""Pulling 1С changes over the standard OData interface into the raw topics, as if pushed.

Why full scans: DataVersion is opaque (not ordered) and the standard interface offers no
change timestamp for catalogs, so there is nothing a cursor could filter on. Each round
reads the whole entity set page by page (``$orderby`` a total order, ``$top``/``$skip``)
and publishes only records whose DataVersion differs from the one last published
(``onec_odata_seen``). The price is one full read per poll interval: set
``MM_ODATA__POLL_INTERVAL_S`` to what the base can serve. Register records have no
DataVersion: a hash of their content (records.content_version) is written into the
published record's ``DataVersion`` (a push must carry one too).

Deletions: 1С deletes objects without a tombstone. After a complete scan, records seen before
but not in it are candidates; each is confirmed absent by a key ``$filter`` query (a row
deleted mid-scan shifts the ``$skip`` pages, so absence from the scan alone proves nothing),
then published as ``{<identity>, "DataVersion": "deleted:<last version>", "DeletionMark":
true, "_deleted": true}``. Only a complete scan reconciles, at most every
``MM_ODATA__RECONCILE_INTERVAL_S``; an interrupted scan resumes from the durable cursor.

One poller per entity set across processes: a PostgreSQL advisory lock; a process that
finds it taken skips the set this round. Records are published (acknowledged) before the
cache and cursor move, in one transaction per page: a crash in between publishes the page
again with the same event ids, which downstream dedupe absorbs; nothing is lost.

Accumulation registers (stock, ``ТоварыНаСкладах``): the stock entity holds balances, so
the poller reads the register's Balance virtual table
(``AccumulationRegister_ТоварыНаСкладах/Balance(Dimensions='Склад,Номенклатура,
Характеристика')``, :attr:`OneCObject.read_set`; a configured 1С name, movement set or
Balance path all resolve to it), never its movements. The table has no ``Ref_Key`` and no
``DataVersion``: each interval the poller takes a full snapshot of the current balances,
paged like any set (``$orderby`` every dimension — a total order, one row per dimension
values — then ``$top``/``$skip``). A row's identity is its dimensions (the stock id), its
version the hash of its content, so only rows whose balance changed since last published
are published; an unchanged snapshot publishes nothing. The stock normalizer appends the
moment the poller took the row (``ce_time``) to that hash, so a balance that returns to an
earlier value is still a new version downstream — which is also why unchanged rows are
dropped here and not left to the sink's ``source_version``: with the moment in it, every
row of every snapshot would be a new version there, a write per stock row per interval.
1С leaves zero balances out of the table:
a row that vanished is confirmed by a key ``$filter`` query like a deletion and published
as a zero balance (its resources ``…Balance`` 0), not as a deletion — the goods are still
known, just not on the warehouse. Since that is the only way a balance reaches zero, a
Balance table is reconciled after every complete scan, not every
``MM_ODATA__RECONCILE_INTERVAL_S``. The dimensions and resources are the configuration's
(:class:`~connectors.onec.objects.BalanceLayout`: УТ 11 ``Характеристика``/``ВНаличии``,
УТ 10.3 ``ХарактеристикаНоменклатуры``/``Количество``), told by the path's ``Dimensions``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.onec.objects import BalanceLayout, OneCObject, lookup
from connectors.onec.odata import store
from connectors.onec.odata.client import ODataClient
from connectors.onec.odata.query import key_filter, parse_virtual_table
from connectors.onec.validation import (
    RecordRejected,
    content_version,
    deletion_record,
    identity,
    validate,
)
from mmstream.envelope import CloudEvent, change_id, now_iso
from mmstream.errors import ConfigurationError, classify
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.metrics import INGRESS_RECORDS
from mmstream.settings import Settings

log = logging.getLogger(__name__)

EVENT_SOURCE = "/onec/odata"
_PREFIXES = ("Catalog_", "Document_", "InformationRegister_")


@dataclass
class ScanReport:
    """What one scan of one entity set did."""

    entity_set: str
    led: bool = True
    complete: bool = False
    read: int = 0
    published: int = 0
    unchanged: int = 0
    rejected: int = 0
    deleted: int = 0
    #: Balance rows that vanished from a Balance table, published as zero balances.
    zeroed: int = 0


def resolve(name: str) -> tuple[OneCObject, str]:
    """(object, OData entity set) of a configured name; ConfigurationError if unknown.

    For an accumulation register the set is its Balance virtual table: the name as given
    when it is a Balance path (canonical form), else the default :attr:`OneCObject.read_set`.
    """
    try:
        vt = parse_virtual_table(name.strip())
    except ValueError as exc:
        raise ConfigurationError(f"MM_ODATA__ENTITY_SETS names {name!r}: {exc}") from None
    obj = lookup(vt.entity_set if vt is not None else name)
    if obj is None:
        raise ConfigurationError(
            f"MM_ODATA__ENTITY_SETS names {name!r}, which is not a 1С object the "
            "bridge knows (see connectors/onec/objects.py)"
        )
    if obj.accumulation:
        if vt is None:
            return obj, obj.read_set
        if vt.table != "Balance":
            raise ConfigurationError(
                f"MM_ODATA__ENTITY_SETS names {name!r}: {obj.entity} holds "
                f"balances, read {obj.odata_name}/Balance(…)"
            )
        balance_layout(obj, vt.text)  # refuses dimensions no configuration keeps stock by
        return obj, vt.text
    if vt is not None:
        raise ConfigurationError(
            f"MM_ODATA__ENTITY_SETS names {name!r}: {obj.name} has no virtual tables"
        )
    return obj, name if name.startswith(_PREFIXES) else obj.odata_name


def balance_layout(obj: OneCObject, read_set: str) -> BalanceLayout:
    """The configuration's layout (dimensions, resources) a Balance path asks by: the one
    whose dimensions its ``Dimensions`` names; ConfigurationError for any other. A balance
    by fewer dimensions sums stock rows together; by more, it splits one stock row into
    several records, each replacing the last."""
    vt = parse_virtual_table(read_set)
    asked = tuple(vt.dimensions or ()) if vt is not None else ()
    for layout in obj.balances:
        if tuple(d.casefold() for d in asked) == tuple(d.casefold() for d in layout.dimensions):
            return layout
    known = "; ".join(
        f"{layout.configuration}: Dimensions='{','.join(layout.dimensions)}'"
        for layout in obj.balances
    )
    raise ConfigurationError(
        f"{read_set!r}: the balance must be asked by the dimensions a stock "
        f"row is kept by ({known})"
    )


def zero_balance(layout: BalanceLayout, ident: dict[str, Any]) -> dict[str, Any]:
    """The balance row 1С leaves out when every resource is zero: identity, each
    ``<resource>Balance`` 0, and its content hash as ``DataVersion`` (as read rows get)."""
    doc: dict[str, Any] = {**ident, **dict.fromkeys(layout.balance_fields, 0)}
    return {**doc, "DataVersion": content_version(doc)}


class ODataPoller:
    """Scans entity sets and publishes what changed; state lives in PostgreSQL."""

    def __init__(
        self, settings: Settings, client: ODataClient, producer: AckedProducer, engine: AsyncEngine
    ) -> None:
        self._settings = settings
        self._client = client
        self._producer = producer
        self._engine = engine

    async def scan(
        self,
        entity_set: str,
        *,
        reconcile: bool | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> ScanReport:
        """Scan ``entity_set`` to its end (or resume the interrupted scan), unless another
        process leads it. ``reconcile`` None: look for deletions when the interval is due."""
        obj, name = resolve(entity_set)
        report = ScanReport(name)
        try:
            async with store.leadership(self._engine, name) as led:
                if not led:
                    report.led = False
                    log.info("another process polls this entity set", extra={"entity_set": name})
                    return report
                await self._scan(obj, name, report, reconcile, should_stop or (lambda: False))
        except (SQLAlchemyError, psycopg.Error) as exc:
            raise classify(exc) from exc
        log.info("odata scan finished", extra=asdict(report))
        return report

    async def _scan(
        self,
        obj: OneCObject,
        name: str,
        report: ScanReport,
        reconcile: bool | None,
        should_stop: Callable[[], bool],
    ) -> None:
        trace = uuid.uuid4().hex
        async with self._engine.begin() as conn:
            cursor = await store.open_scan(conn, name)
        skip, page_size = cursor.scan_skip, self._settings.odata.page_size
        order = balance_layout(obj, name).scan_order if obj.accumulation else obj.scan_order
        while True:
            if should_stop():
                return  # the scan stays in progress; the next one resumes at `skip`
            page = await self._client.query(name, orderby=order, top=page_size, skip=skip)
            skip += len(page)
            await self._take(obj, name, cursor.scan_id, page, report, trace, advance_to=skip)
            if len(page) < page_size:
                break
        async with self._engine.begin() as conn:
            await store.complete_scan(conn, name)
        report.complete = True
        if reconcile is None and obj.accumulation:
            reconcile = True  # a balance reaches zero only by vanishing from the table
        if reconcile is None:
            last = cursor.reconciled_at
            reconcile = (
                last is None
                or (datetime.now(UTC) - last).total_seconds()
                >= self._settings.odata.reconcile_interval_s
            )
        if reconcile:
            await self._reconcile(obj, name, cursor.scan_id, report, trace)

    async def _take(
        self,
        obj: OneCObject,
        name: str,
        scan_id: int,
        docs: list[dict[str, Any]],
        report: ScanReport,
        trace: str,
        *,
        advance_to: int | None = None,
    ) -> None:
        """Publish the changed records among ``docs``, then remember all of them."""
        entries: list[tuple[store.Seen, dict[str, Any]]] = []
        for doc in docs:
            report.read += 1
            if obj.kind == "register" and "DataVersion" not in doc:
                doc = {**doc, "DataVersion": content_version(doc)}
            try:
                key, ident = identity(obj, doc)
            except RecordRejected as exc:
                self._reject(obj, name, exc, report)
                continue
            entries.append((store.Seen(key, ident, str(doc.get("DataVersion", "")), None), doc))
        async with self._engine.begin() as conn:
            published = await store.published_versions(
                conn, name, [seen.key for seen, _ in entries]
            )
        out: list[OutRecord] = []
        rows: list[tuple[store.Seen, bool]] = []
        for seen, doc in entries:
            if published.get(seen.key) == seen.data_version:
                report.unchanged += 1
                rows.append((seen, False))
                continue
            try:
                record = validate(obj, doc)
            except RecordRejected as exc:
                # Remembered as read, so it is not taken for deleted; re-checked every scan.
                self._reject(obj, name, exc, report)
                rows.append((seen, False))
                continue
            out.append(self._out(obj, record.key, record.version, doc, trace))
            rows.append((seen, True))
        await self._send(obj, out, "accepted")
        report.published += len(out)
        async with self._engine.begin() as conn:
            await store.remember(conn, name, scan_id, rows)
            if advance_to is not None:
                await store.advance(conn, name, advance_to)

    async def _reconcile(
        self, obj: OneCObject, name: str, scan_id: int, report: ScanReport, trace: str
    ) -> None:
        async with self._engine.begin() as conn:
            candidates = await store.unseen(conn, name, scan_id)
        gone: list[store.Seen] = []
        for seen in candidates:
            found = await self._client.query(name, filter=key_filter(seen.ident), top=1)
            if found:
                # Still there: the pages moved under the scan and skipped it. Take it now.
                await self._take(obj, name, scan_id, found, report, trace)
            else:
                gone.append(seen)
        out = []
        for seen in gone:
            if seen.published_version is None:
                continue  # never published: downstream never heard of it
            if obj.accumulation:
                doc = zero_balance(balance_layout(obj, name), seen.ident)
            else:
                doc = deletion_record(seen.ident, seen.published_version)
            out.append(self._out(obj, seen.key, doc["DataVersion"], doc, trace))
        if obj.accumulation:
            await self._send(obj, out, "zeroed")
            report.zeroed += len(out)
        else:
            await self._send(obj, out, "deleted")
            report.deleted += len(out)
        async with self._engine.begin() as conn:
            await store.forget(conn, name, [seen.key for seen in gone])
            await store.mark_reconciled(conn, name)

    def _out(
        self, obj: OneCObject, key: str, version: str, doc: dict[str, Any], trace: str
    ) -> OutRecord:
        event = CloudEvent(
            id=change_id(obj.entity, key, version),
            source=EVENT_SOURCE,
            type=obj.event_type,
            subject=key,
            time=now_iso(),
            request_id=trace,
        )
        value = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        return OutRecord(self._settings.topic(obj.topic), value, key.encode(), event.headers())

    async def _send(self, obj: OneCObject, out: list[OutRecord], outcome: str) -> None:
        if out:
            await self._producer.send_many(out)
            INGRESS_RECORDS.labels("onec_odata", obj.entity, outcome).inc(len(out))

    @staticmethod
    def _reject(obj: OneCObject, name: str, exc: RecordRejected, report: ScanReport) -> None:
        report.rejected += 1
        INGRESS_RECORDS.labels("onec_odata", obj.entity, "rejected").inc()
        log.warning(
            "a record read over OData is not valid; not published",
            extra={"entity_set": name, "detail": str(exc)},
        )
