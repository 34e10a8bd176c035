"""The reconcile job: compare PostgreSQL with Bitrix24 and 1С, report the drift, and (with
``repair``) repair it through the normal path only.

Repairs (never a write to a target around the pipeline):

* ``missing`` / ``deleted`` / ``differs`` / ``relinked`` — the current canonical row is
  re-published as a change: a new outbox entry (new event id, the row's version, the
  partition of the entity's last change) that the relay publishes to the norm and egress
  topics; egress then creates, updates or relinks the object exactly as for a change from
  1С (its look-up by external key before any create keeps it from creating twice);
* ``newer_at_source`` / ``orphan`` — the 1С record is read again over OData and published
  to its raw topic, as the OData poller does (same event id the poller would give it, so
  the sink's dedupe absorbs a second copy); an orphan 1С does not hold either cannot be
  repaired through the pipeline and stays reported (runbook: delete it in the portal).

Every repair writes one ``ops_audit`` row (action ``reconcile.repair``) with the drift
(before) and what was published (after). Objects with a change still on its way (an
unpublished outbox entry, a parked delivery, or a change published in the last
``reconcile.in_flight_grace_s`` and not yet delivered, per ``egress_delivery``) are not judged: the
pipeline is still working on them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mmstream import audit
from mmstream.errors import ConfigurationError
from mmstream.metrics import RECONCILE_DRIFT, RECONCILE_LAST_RUN, RECONCILE_RUNS
from mmstream.settings import Settings
from stages.outbox.restate import republish
from stages.reconcile import bitrix24 as bx
from stages.reconcile import onec as docs
from stages.reconcile.drift import KINDS, Drift, classify_source, classify_target

log = logging.getLogger(__name__)

TARGETS = ("bitrix24", "onec")
AUDIT_ACTION = "reconcile.repair"
#: Drift repaired by reading the source again (the rest: re-published from PostgreSQL).
REREAD = ("newer_at_source", "orphan")
#: Repair outcomes that leave nothing for an operator.
REPAIRED = ("republished", "reread", "covered")
#: Marks a re-published payload (its value: the run id). An egress action that writes only
#: the versions of one source (delivery tasks: 1С's) writes a repair whatever the source of
#: the row's last version, since it re-states the whole row, not one source's change.
#: pg advisory lock key of the scheduled run (one replica runs it at a time).
LOCK_KEY = "mm-reconcile"

_XWALK = text(
    "SELECT canonical_id, external_id FROM crosswalk WHERE system = :system AND entity = :entity"
)
_IN_FLIGHT = text(
    "SELECT entity_id FROM outbox WHERE entity = :entity AND published_at IS NULL "
    "UNION SELECT entity_id FROM egress_parked WHERE target = :target AND entity = :entity "
    "UNION SELECT o.entity_id FROM (SELECT entity_id, max(id) AS id FROM outbox "
    "  WHERE entity = :entity AND created_at > now() - make_interval(secs => :grace) "
    "  GROUP BY entity_id) o "
    "LEFT JOIN egress_delivery d ON d.target = :target AND d.entity = :entity "
    "  AND d.entity_id = o.entity_id "
    "WHERE d.last_outbox_id IS NULL OR d.last_outbox_id < o.id"
)
_SEEN = text(
    "SELECT source_id, version FROM source_version WHERE entity = :entity AND source_id = ANY(:ids)"
)


@dataclass
class Repair:
    """What was done about one drift."""

    drift: Drift
    action: str  # republished | reread | unresolved | failed
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**self.drift.as_dict(), "action": self.action, "repair_detail": self.detail}


@dataclass
class Report:
    """One run's findings (``mmctl reconcile --output json`` prints it)."""

    run_id: str
    drifts: list[Drift] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=dict)
    skipped_in_flight: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "drift": [d.as_dict() for d in self.drifts],
            "repairs": [r.as_dict() for r in self.repairs],
            "compared": self.compared,
            "skipped_in_flight": self.skipped_in_flight,
            "errors": self.errors,
            "duration_s": round(self.duration_s, 3),
        }


class Reconciler:
    """One reconcile run's resources: the database, a Bitrix24 client limited to
    ``reconcile.budget_share`` of the portal budget, 1С over OData, a producer for re-reads."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        bitrix24: Any = None,
        odata: Any = None,
        producer: Any = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bitrix24 = bitrix24
        self.odata = odata
        self.producer = producer
        #: What 1С should hold of each document compared this run (for its repair).
        self._expected: dict[tuple[str, str], docs.Expected] = {}
        couriers = settings.bitrix24.couriers
        flows = settings.flows
        deals = [
            bx.courier_deal_spec(
                entity,
                category,
                status_field=flows.deal_status_field,
                document_field=flows.deal_document_field,
            )
            for entity, category in (
                ("instant_order", couriers.instant_order_category_id),
                ("return", couriers.return_category_id),
            )
            if category is not None
        ]
        self.specs = bx.specs(
            settings.bitrix24.product_iblock_id,
            delivery=bx.delivery_task_spec(
                couriers.task_id_field,
                couriers.delivery_entity_type_id,
                couriers.delivery_item_id_field,
            ),
            deals=deals,
        )
        self.doc_specs = docs.specs(_document_sets(settings), settings.flows.instant_order_document)

    async def run(
        self,
        entities: Iterable[str] | None = None,
        targets: Iterable[str] = TARGETS,
        *,
        repair: bool = False,
        actor: str = "reconcile",
    ) -> Report:
        """Compare (and repair) the named entities with the named targets."""
        started = time.monotonic()
        report = Report(uuid.uuid4().hex)
        names = list(entities or self.settings.reconcile.entities)
        known = {*self.specs, *self.doc_specs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigurationError(
                f"reconcile: unknown entity {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        targets = list(targets)
        try:
            for name in names:
                spec = self.specs.get(name)
                if spec is not None and "bitrix24" in targets and self.bitrix24 is not None:
                    report.drifts += await self._bitrix24(spec, report)
                onec_set = self.settings.reconcile.onec_sets.get(name)
                doc_spec = self.doc_specs.get(name)
                if "onec" in targets and self.odata is not None and doc_spec is not None:
                    report.drifts += await self._onec_documents(doc_spec, report)
                if "onec" in targets and self.odata is None and (onec_set or doc_spec):
                    note = "1С not compared: MM_ODATA__ENABLED is false (no OData to read)"
                    if note not in report.errors:
                        report.errors.append(note)
                if "onec" in targets and self.odata is not None and onec_set:
                    # By name: a document entity (no Bitrix24 spec) may have a 1С set too.
                    report.drifts += await self._onec(name, onec_set, report)
            if repair:
                reread: set[tuple[str, str]] = set()
                for drift in report.drifts:
                    key = (drift.entity, drift.canonical_id)
                    if drift.kind in REREAD and key in reread:
                        # An object lost before PostgreSQL is both an orphan at the target
                        # and newer at the source: one re-read repairs both.
                        report.repairs.append(Repair(drift, "covered", "re-read once above"))
                        continue
                    done = await self._repair(drift, report.run_id, actor)
                    if done.action == "reread":
                        reread.add(key)
                    report.repairs.append(done)
        except Exception:
            RECONCILE_RUNS.labels("failed").inc()
            raise
        report.duration_s = time.monotonic() - started
        self._measure(names, targets, report.drifts)
        RECONCILE_RUNS.labels("ok").inc()
        RECONCILE_LAST_RUN.set_to_current_time()
        log.info(
            "reconcile finished",
            extra={
                "run_id": report.run_id,
                "drift": len(report.drifts),
                "repaired": sum(r.action in REPAIRED for r in report.repairs),
                "duration_s": round(report.duration_s, 3),
            },
        )
        return report

    # -- comparing ------------------------------------------------------------------------

    async def _bitrix24(self, spec: bx.Spec, report: Report) -> list[Drift]:
        async with self.engine.connect() as conn:
            rows = [
                r[0]
                for r in await conn.execute(
                    text(f'SELECT to_jsonb(t) FROM "{spec.table}" t')  # noqa: S608 — fixed names
                )
            ]
            links = {
                str(c): str(e)
                for c, e in await conn.execute(_XWALK, {"system": bx.TARGET, "entity": spec.entity})
            }
            needed = {
                name: {
                    str(c): str(e)
                    for c, e in await conn.execute(_XWALK, {"system": bx.TARGET, "entity": name})
                }
                for name in spec.needs
            }
            busy = {
                str(r[0])
                for r in await conn.execute(
                    _IN_FLIGHT,
                    {
                        "entity": spec.entity,
                        "target": bx.TARGET,
                        "grace": self.settings.reconcile.in_flight_grace_s,
                    },
                )
            }
        canonical = []
        for row in rows:
            ident = str(row["id"])
            if ident in busy:
                continue
            obj = spec.expect(row, links.get(ident), needed)
            if obj is not None:
                canonical.append(obj)
        listing = []
        for family in spec.families:
            listing += await bx.list_family(
                self.bitrix24, family, page_size=self.settings.reconcile.page_size
            )
        report.compared[f"{spec.entity}/bitrix24"] = len(canonical)
        report.skipped_in_flight[f"{spec.entity}/bitrix24"] = len(busy)
        drifts = classify_target(
            spec.entity,
            bx.TARGET,
            spec.key_field,
            canonical,
            listing,
            keyless_is_ours=spec.keyless_is_ours,
            orphan_key=spec.orphan,
        )
        # An orphan whose canonical row exists but is skipped (in flight) is not one.
        known = {str(r["id"]) for r in rows}
        return [d for d in drifts if not (d.kind == "orphan" and d.canonical_id in known)]

    async def _onec(self, entity: str, entity_set: str, report: Report) -> list[Drift]:
        versions: dict[str, str] = {}
        page, skip = self.settings.odata.page_size, 0
        while True:
            docs = await self.odata.query(entity_set, orderby="Ref_Key", top=page, skip=skip)
            for doc in docs:
                if doc.get("Ref_Key") and doc.get("DataVersion"):
                    versions[str(doc["Ref_Key"])] = str(doc["DataVersion"])
            skip += len(docs)
            if len(docs) < page:
                break
        async with self.engine.connect() as conn:
            seen: dict[str, set[str]] = {}
            for sid, version in await conn.execute(
                _SEEN, {"entity": entity, "ids": list(versions)}
            ):
                seen.setdefault(str(sid), set()).add(str(version))
        report.compared[f"{entity}/onec"] = len(versions)
        return classify_source(entity, "onec", versions, seen)

    async def _onec_documents(self, spec: docs.DocSpec, report: Report) -> list[Drift]:
        async with self.engine.connect() as conn:
            rows = [
                r[0]
                for r in await conn.execute(
                    text(f'SELECT to_jsonb(t) FROM "{spec.table}" t')  # noqa: S608 — fixed names
                )
            ]
            busy = {
                str(r[0])
                for r in await conn.execute(
                    _IN_FLIGHT,
                    {
                        "entity": spec.entity,
                        "target": docs.TARGET,
                        "grace": self.settings.reconcile.in_flight_grace_s,
                    },
                )
            }
        expected = [
            e for row in rows if str(row["id"]) not in busy and (e := spec.expect(row)) is not None
        ]
        by_set: dict[str, list[str]] = {}
        for exp in expected:
            by_set.setdefault(exp.entity_set, []).append(exp.ref)
        found: dict[str, dict[str, Any]] = {}
        for entity_set, refs in by_set.items():
            found.update(await docs.read_documents(self.odata, entity_set, refs))
        self._expected.update({(spec.entity, e.id): e for e in expected})
        report.compared[f"{spec.entity}/onec"] = len(expected)
        report.skipped_in_flight[f"{spec.entity}/onec"] = len(busy)
        return docs.classify(spec.entity, expected, found)

    # -- repairing ------------------------------------------------------------------------

    async def _repair(self, drift: Drift, run_id: str, actor: str) -> Repair:
        doc_spec = self.doc_specs.get(drift.entity) if drift.target == docs.TARGET else None
        if doc_spec is not None and drift.kind != "newer_at_source":
            return await self._repair_document(doc_spec, drift, run_id, actor)
        # None: a document entity without a Bitrix24 spec; its only drift here is 1С's
        # newer_at_source (from reconcile.onec_sets), repaired by a re-read.
        spec = self.specs.get(drift.entity)
        if spec is not None and drift.kind in spec.unrepairable:
            return Repair(drift, "unresolved", spec.unrepairable[drift.kind])
        if drift.kind in REREAD:
            step = self._reread(drift)
        elif spec is None:
            step = _refuse(
                ConfigurationError(
                    f"reconcile: no spec to repair {drift.entity} "
                    f"{drift.kind} drift at {drift.target}"
                )
            )
        else:
            step = self._republish(spec, drift, run_id, actor)
        return await self._attempt(drift, run_id, actor, step)

    async def _repair_document(
        self, spec: docs.DocSpec, drift: Drift, run_id: str, actor: str
    ) -> Repair:
        """A 1С document's drift, repaired as ``spec.repairs`` says (stages/reconcile/onec.py)."""
        how = spec.repairs.get(drift.kind, "unresolved")
        exp = self._expected.get((drift.entity, drift.canonical_id))
        if how == "republish":
            step = self._republish(spec, drift, run_id, actor)
        elif how == "unresolved" or exp is None or self.producer is None:
            why = (
                "a document deleted in 1С is recreated by people, not by the reconcile "
                "(runbook: deleted — a 1С document)"
                if how == "unresolved"
                else "1С is not read over OData here"
            )
            return Repair(drift, "unresolved", why)
        elif how == "result":
            step = self._answer(drift, exp)
        else:
            step = self._reread_document(drift, exp)
        return await self._attempt(drift, run_id, actor, step)

    async def _attempt(
        self, drift: Drift, run_id: str, actor: str, step: Coroutine[Any, Any, Repair]
    ) -> Repair:
        """Run one repair ``step``: audit a re-read (a re-publish audits itself, in the
        outbox entry's transaction), report a failure instead of raising, log the outcome."""
        try:
            done = await step
            if done.action == "reread":
                await audit.record(
                    self.engine,
                    actor,
                    AUDIT_ACTION,
                    f"{drift.entity}:{drift.canonical_id}",
                    _audit_details(run_id, done),
                )
        except Exception as exc:  # noqa: BLE001 — one object's failure is reported, the run goes on
            log.warning(
                "reconcile repair failed",
                extra={"entity": drift.entity, "kind": drift.kind, "error": str(exc)[:300]},
            )
            done = Repair(drift, "failed", f"{type(exc).__name__}: {str(exc)[:300]}")
        log.info(
            "reconcile repair",
            extra={
                "entity": drift.entity,
                "kind": drift.kind,
                "entity_id": drift.canonical_id,
                "action": done.action,
            },
        )
        return done

    async def _answer(self, drift: Drift, exp: docs.Expected) -> Repair:
        """1С's answer for a courier document, read again and published on
        ``raw.onec.result`` exactly as the egress publishes it after a write."""
        from stages.egress.courier_documents import RESULT_TOPIC, result_value
        from stages.egress.events import event_record, publish
        from stages.egress.onec_odata import write_result

        found = (await docs.read_documents(self.odata, exp.entity_set, [exp.ref])).get(
            exp.ref.lower()
        )
        if found is None:
            return Repair(drift, "unresolved", f"1С no longer has {exp.entity_set} {exp.ref}")
        key = f"{drift.entity}:{drift.canonical_id}"
        result = write_result(exp.entity_set, found, key=key, operation=drift.entity, replayed=True)
        value = result_value(drift.entity, drift.canonical_id, result)
        await publish(
            self.producer,
            event_record(
                self.settings.topic(RESULT_TOPIC),
                "onec.result",
                drift.entity,
                drift.canonical_id,
                value,
                dedupe=key,
            ),
            drift.entity,
        )
        return Repair(
            drift,
            "reread",
            f"1С's {exp.entity_set} {exp.ref} (number "
            f"{value['document']['number']!r}, posted {value['document']['posted']}) "
            f"published to {self.settings.topic(RESULT_TOPIC)}",
        )

    async def _reread_document(self, drift: Drift, exp: docs.Expected) -> Repair:
        """A cash document read again from 1С and published on its raw topic, as the OData
        poller would; one 1С no longer has is published as the poller's deletion record."""
        from connectors.onec.odata.poller import EVENT_SOURCE, resolve
        from connectors.onec.validation import RecordRejected, deletion_record, validate
        from mmstream.envelope import CloudEvent, change_id, now_iso
        from mmstream.kafka.producer import OutRecord

        obj, name = resolve(exp.entity_set)
        found = (await docs.read_documents(self.odata, name, [exp.ref])).get(exp.ref.lower())
        record = found if found is not None else deletion_record({"Ref_Key": exp.ref}, exp.version)
        try:
            checked = validate(obj, record)
        except RecordRejected as exc:
            return Repair(drift, "unresolved", f"1С record is not valid: {exc}")
        event = CloudEvent(
            id=change_id(obj.entity, checked.key, checked.version),
            source=EVENT_SOURCE,
            type=obj.event_type,
            subject=checked.key,
            time=now_iso(),
            request_id=f"reconcile-{uuid.uuid4().hex}",
        )
        value = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        await self.producer.send_many(
            [
                OutRecord(
                    self.settings.topic(obj.topic), value, checked.key.encode(), event.headers()
                )
            ]
        )
        what = "deletion record" if found is None else f"version {checked.version}"
        return Repair(
            drift,
            "reread",
            f"{name} {checked.key} {what} published to {self.settings.topic(obj.topic)}",
        )

    async def _republish(
        self, spec: bx.Spec | docs.DocSpec, drift: Drift, run_id: str, actor: str
    ) -> Repair:
        # The outbox entry and its audit row commit together: no repair goes unaudited.
        async with self.engine.begin() as conn:
            outbox_id = (
                await conn.execute(
                    republish(spec.table),
                    {
                        "event_id": str(uuid.uuid4()),
                        "entity": spec.entity,
                        "id": drift.canonical_id,
                        "run": run_id,
                    },
                )
            ).scalar()
            if outbox_id is None:
                return Repair(
                    drift,
                    "unresolved",
                    "no earlier outbox entry names the partition "
                    "to relay from: re-send the object from 1С",
                )
            done = Repair(drift, "republished", f"outbox entry {outbox_id}")
            await audit.record(
                conn,
                actor,
                AUDIT_ACTION,
                f"{drift.entity}:{drift.canonical_id}",
                _audit_details(run_id, done),
            )
        return done

    async def _reread(self, drift: Drift) -> Repair:
        from connectors.onec.odata.poller import EVENT_SOURCE, resolve
        from connectors.onec.odata.query import key_filter
        from connectors.onec.validation import RecordRejected, validate
        from mmstream.envelope import CloudEvent, change_id, now_iso
        from mmstream.kafka.producer import OutRecord

        entity_set = self.settings.reconcile.onec_sets.get(drift.entity)
        if self.odata is None or self.producer is None or not entity_set:
            return Repair(drift, "unresolved", "1С is not read over OData here")
        obj, name = resolve(entity_set)
        found = await self.odata.query(
            name, filter=key_filter({"Ref_Key": drift.canonical_id}), top=1
        )
        if not found:
            return Repair(
                drift,
                "unresolved",
                f"1С ({name}) has no {drift.canonical_id}: not "
                "ours to recreate; delete it in the portal if it is junk",
            )
        try:
            record = validate(obj, found[0])
        except RecordRejected as exc:
            return Repair(drift, "unresolved", f"1С record is not valid: {exc}")
        event = CloudEvent(
            id=change_id(obj.entity, record.key, record.version),
            source=EVENT_SOURCE,
            type=obj.event_type,
            subject=record.key,
            time=now_iso(),
            request_id=f"reconcile-{uuid.uuid4().hex}",
        )
        value = json.dumps(found[0], ensure_ascii=False, separators=(",", ":")).encode()
        await self.producer.send_many(
            [OutRecord(self.settings.topic(obj.topic), value, record.key.encode(), event.headers())]
        )
        return Repair(
            drift,
            "reread",
            f"{name} {record.key} version {record.version} "
            f"published to {self.settings.topic(obj.topic)}",
        )

    @staticmethod
    def _measure(entities: list[str], targets: list[str], drifts: list[Drift]) -> None:
        counts: dict[tuple[str, str, str], int] = {}
        for d in drifts:
            counts[(d.entity, d.target, d.kind)] = counts.get((d.entity, d.target, d.kind), 0) + 1
        for entity in entities:
            for target in targets:
                for kind in KINDS:
                    RECONCILE_DRIFT.labels(entity, target, kind).set(
                        counts.get((entity, target, kind), 0)
                    )


def _document_sets(settings: Settings) -> dict[str, str]:
    """order / shipment / return -> the 1С entity set of this base's documents."""
    from stages.egress.onec_odata import entity_sets

    return entity_sets(settings.onec.odata_writes)


async def _refuse(exc: Exception) -> Repair:
    """A repair step that cannot be taken: raised when awaited, so that it is reported as
    the run's other failed repairs are."""
    raise exc


def _audit_details(run_id: str, done: Repair) -> dict[str, Any]:
    """An audit row's details: the drift found (before) and the repair made (after)."""
    return {
        "run_id": run_id,
        "before": done.drift.as_dict(),
        "after": {"action": done.action, "detail": done.detail},
    }


# -- wiring ---------------------------------------------------------------------------------


def share_settings(settings: Settings) -> Settings:
    """The settings with the portal budget cut to ``reconcile.budget_share``."""
    share = settings.reconcile.budget_share
    b = settings.bitrix24
    return settings.model_copy(
        update={
            "bitrix24": b.model_copy(
                update={
                    "rate_per_s": b.rate_per_s * share,
                    "burst": max(1, int(b.burst * share)),
                    "budget_workers": 1,
                }
            )
        }
    )


async def run_once(
    settings: Settings,
    *,
    entities: Iterable[str] | None = None,
    targets: Iterable[str] = TARGETS,
    repair: bool = False,
    actor: str = "reconcile",
) -> Report:
    """One reconcile with its own connections (the command line and the schedule)."""
    from connectors.bitrix24.client import Bitrix24Client
    from connectors.onec.odata.client import ODataClient
    from mmstream.db.engine import async_engine
    from mmstream.kafka.producer import AckedProducer

    targets = list(targets)
    engine = async_engine(settings, pool_size=2)
    client = odata = producer = None
    try:
        if "bitrix24" in targets:
            client = Bitrix24Client.for_worker(share_settings(settings))
        if "onec" in targets and settings.odata.enabled:
            odata = ODataClient(settings.odata)
        if odata is not None and repair:
            producer = AckedProducer(settings.kafka, client_id="mm-reconcile")
        return await Reconciler(
            settings, engine, bitrix24=client, odata=odata, producer=producer
        ).run(entities, targets, repair=repair, actor=actor)
    finally:
        if client is not None:
            await client.aclose()
        if odata is not None:
            await odata.aclose()
        if producer is not None:
            producer.close()
        await engine.dispose()


async def run_scheduled(
    settings: Settings,
    *,
    repair: bool,
    actor: str,
    stop: asyncio.Event | None = None,
    run: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Reconcile every ``reconcile.interval_s``; of several replicas only the one holding
    the PostgreSQL advisory lock runs (a session lock: it goes with a dead replica's
    connection, so another takes over at its next tick). ``run``: the work of one tick
    (default: :func:`run_once` with these settings)."""
    from mmstream.db.engine import async_engine

    stop = stop or asyncio.Event()
    run = run or (lambda: run_once(settings, repair=repair, actor=actor))
    engine = async_engine(settings, pool_size=1)
    try:
        while not stop.is_set():
            async with engine.connect() as conn:
                got = await conn.scalar(
                    text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": LOCK_KEY}
                )
                await conn.commit()
                if got:
                    try:
                        await run()
                    except Exception as exc:  # noqa: BLE001 — the next tick tries again
                        log.error("reconcile run failed", extra={"error": str(exc)[:500]})
                    finally:
                        await conn.execute(
                            text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": LOCK_KEY}
                        )
                        await conn.commit()
                else:
                    log.info("another replica runs the reconcile")
            try:
                await asyncio.wait_for(stop.wait(), settings.reconcile.interval_s)
            except TimeoutError:
                pass
    finally:
        await engine.dispose()
