"""The chaos suite's mixed load and its accounting.

``MixedLoad`` posts records of the business flows through the real bridge with the real
protocols (1С push JSON, Bitrix24 form-encoded events):

- master data (flow 1): products, counterparties, warehouses, price types, prices -> Bitrix24;
- deliveries (flow 2): 1С orders with a delivery address -> Bitrix24 tasks; a courier
  completes a task in Bitrix24 (an ONTASKUPDATE event) -> the confirmation in 1С;
- couriers' instant orders and returns (flow 3): a courier closes a won deal in their funnel
  in Bitrix24 (goods rows of products and a customer that reached Bitrix24 through flow 1),
  the portal sends ONCRMDEALADD -> the 1С document, created and posted, and its status back
  on the deal;
- cash (flow 4): unposted ПКО seeded in the 1С base, pushed -> posted through OData.

Every posted version carries a label ``chaos-<key8> v<n>`` into the field the target shows
(name, title, address), so the target's state tells which version arrived and the emulator's
call log tells the order of writes per object.

``account()`` then counts, per offered record: accepted (2xx), stored (the row in PostgreSQL
holds this version or a later one offered after it), at target (the emulator holds it),
dead-lettered (its key in a dlq.* topic), lost (accepted, but neither stored and at the
target nor dead-lettered) and duplicated (outbox changes repeated, objects created twice at
Bitrix24, documents posted or deliveries confirmed twice in 1С).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import psycopg

from mmstream.dlq.reader import DlqReader
from mmstream.models.base import derived_id
from mmstream.settings import CourierObjectSettings
from stages.normalize.derive_delivery_task import delivery_task_id
from tests.e2e.test_courier_flows import cash_receipt, order
from tests.e2e.test_egress_master import catalog
from tests.support.bitrix24 import EnrichStack, event_body, with_tokens
from tests.support.processes import wait_http
from tests.support.stack import onec_product

log = logging.getLogger(__name__)
LABEL = re.compile(r"chaos-([0-9a-f]{8}) v(\d+)")
#: The worker kinds a supervisor restarts: process name in the stack -> what it is.
#: ``start_sink`` and ``start_entity_sink`` both run the one entity sink: two replicas of a group.
WORKERS = {
    "sink": "entity sink (replica 1)",
    "sink-entities": "entity sink (replica 2)",
    "egress": "egress",
    "enrich": "enrichment",
}
CASH_SET = "Document_ПриходныйКассовыйОрдер"
#: The couriers' deal funnels (CATEGORY_ID) and the 1С document each deal becomes.
COURIER_FUNNELS = {"instant_order": 3, "return": 5}
COURIER_SETS = {
    "instant_order": "Document_ЗаказКлиента",
    "return": "Document_ВозвратТоваровОтКлиента",
}
#: Deal ids of the load start here, clear of anything the portal numbers itself.
DEAL_BASE = 700_000
#: Storm kinds whose call gave the client no answer (in time). A ``reset`` ran nothing, yet
#: the 1С emulator's call log shows the 200 the dropped answer started with.
NOT_ANSWERED = ("reset", "timeout", "reset_after_write")
_WRITES = re.compile(r"\.(add|update|set)$")


def version(n: int) -> str:
    """A 1С DataVersion (8 opaque bytes, base64) for the n-th write of a record."""
    return base64.b64encode(n.to_bytes(4, "big") + bytes(4)).decode()


def label(key: str, n: int) -> str:
    return f"chaos-{key.replace('-', '')[:8]} v{n}"


@dataclass
class Offer:
    """One record offered to the bridge and what it answered."""

    flow: str
    entity: str
    key: str  # canonical id (the bridge's answer for prices)
    n: int  # the n-th version of this key
    version: str  # the version PostgreSQL should hold
    status: int | None
    retry_after: str | None = None
    at: float = field(default_factory=time.monotonic)
    answered_at: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class ChaosStack(EnrichStack):
    """Every process of the four flows: both emulators, the bridge and the four workers."""

    def start_everything(self) -> ChaosStack:
        """Both emulators and the bridge start together, the workers once the emulators
        answer (they talk to them from the start); then the bridge is waited for. One after
        the other, each process's start (seconds on a busy machine) added up per scenario."""
        embedded = self.settings.embedded
        emulators = [
            (
                self._start(
                    "bitrix24", ["emulate", "bitrix24", "--port", str(embedded.bitrix24_port)]
                ),
                f"{self.emulator_url}/health",
            ),
            (
                self._start("onec", ["emulate", "onec", "--port", str(embedded.onec_port)]),
                f"{self.onec_url}/health",
            ),
        ]
        bridge = self._start("bridge", ["bridge"])
        for proc, url in emulators:
            wait_http(url, proc)
        self.start_workers()
        wait_http(f"{self.bridge_url}/health/ready", bridge)
        return self

    def start_workers(self) -> None:
        self.start_sink()
        self.start_entity_sink()
        self.start_egress()
        self.start_enrich()

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop every process at once (SIGTERM to all, then wait; SIGKILL after ``grace_s``):
        a scenario's stack is thrown away, and one after another cost ~8 s a scenario. What
        the stack did was checked before the stop, and its groups and topics are the test's
        own, so a worker still leaving its group after a second is killed (a Faust worker's
        shutdown on a busy machine took the whole 4 s it was given, per scenario)."""
        running = [p for p in self.procs.values() if p.popen and p.popen.poll() is None]
        for proc in self.procs.values():
            proc.stopped = True
        for proc in running:
            proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in running:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()

    def restart(self, name: str, sig: int | None = None) -> None:
        """Kill worker ``name`` (SIGKILL by default) and start it again, as a supervisor does."""
        proc = self.procs[name]
        proc.kill(signal.SIGKILL if sig is None else sig)
        proc.start()

    def revive(self) -> list[str]:
        """Start again every worker that died by itself (a supervisor's job); their names."""
        dead = [
            n
            for n in WORKERS
            if n in self.procs and not self.procs[n].alive() and not self.procs[n].stopped
        ]
        for name in dead:
            self.procs[name].start()
        return dead


def chaos_stack(pipeline, *, max_attempts: int = 60, budget_s: float = 120) -> ChaosStack:
    """A ChaosStack on the pipeline fixture's settings: the portal's event token, the
    couriers' funnels, and a retry budget long enough for a price to wait for its product."""
    settings = with_tokens(
        pipeline.settings,
        couriers=CourierObjectSettings(
            instant_order_category_id=COURIER_FUNNELS["instant_order"],
            return_category_id=COURIER_FUNNELS["return"],
        ),
    )
    settings = settings.model_copy(
        update={
            "retry": settings.retry.model_copy(
                update={"max_attempts": max_attempts, "budget_s": budget_s}
            )
        }
    )
    return ChaosStack(settings, pipeline.log_dir)


class MixedLoad:
    """Posts rounds of records of the four flows (see the module docstring)."""

    def __init__(self, stack: ChaosStack, *, seed: int = 7, updates: bool = True) -> None:
        self.stack = stack
        self.rng = random.Random(seed)
        self.updates = updates
        self.offers: list[Offer] = []
        self.versions: dict[tuple[str, str], int] = defaultdict(int)
        self.products: list[str] = []
        self.price_types: list[str] = []
        self.counterparties: list[str] = []
        self.deals = 0
        self.orders: list[str] = []
        self.completed: set[str] = set()
        self.rounds = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=30)

    # -- posting ---------------------------------------------------------------------------
    def _post(self, flow: str, entity: str, key: str, n: int, ver: str, send, **extra) -> Offer:
        offer = Offer(flow, entity, key, n, ver, None, extra=extra)
        try:
            resp = send()
            offer.status = resp.status_code
            offer.retry_after = resp.headers.get("Retry-After")
            if offer.accepted and entity == "price":
                offer.key = resp.json()["id"]
        except httpx.HTTPError as exc:
            offer.extra["error"] = type(exc).__name__
        offer.answered_at = time.monotonic()
        with self._lock:
            self.offers.append(offer)
        return offer

    def _onec(self, obj: str, record: dict) -> httpx.Response:
        return self._client.post(
            f"{self.stack.bridge_url}/v1/onec/{obj}",
            json=record,
            headers={"Authorization": f"Bearer {self.stack.token}"},
        )

    def _next(self, entity: str, key: str) -> tuple[int, str]:
        self.versions[(entity, key)] += 1
        n = self.versions[(entity, key)]
        return n, version(n)

    def product(self, key: str | None = None) -> Offer:
        key = key or str(uuid.uuid4())
        n, ver = self._next("product", key)
        rec = onec_product(key, ver, Description=label(key, n))
        offer = self._post(
            "master", "product", key, n, ver, lambda: self._onec("Номенклатура", rec)
        )
        if n == 1 and offer.accepted:
            self.products.append(key)
        return offer

    def catalog_item(self, entity: str, obj: str, key: str | None = None, **extra) -> Offer:
        key = key or str(uuid.uuid4())
        n, ver = self._next(entity, key)
        rec = catalog(key, ver, label(key, n), **extra)
        offer = self._post("master", entity, key, n, ver, lambda: self._onec(obj, rec))
        if entity == "price_type" and n == 1 and offer.accepted:
            self.price_types.append(key)
        return offer

    def counterparty(self, key: str | None = None) -> Offer:
        offer = self.catalog_item(
            "counterparty",
            "Контрагенты",
            key,
            ИНН="7701234567",
            ЮрФизЛицо="ЮрЛицо",
            Покупатель=True,
        )
        if offer.n == 1 and offer.accepted:
            self.counterparties.append(offer.key)
        return offer

    def _courier_goods(self) -> tuple[int, int] | None:
        """A product and a customer of ours that are in Bitrix24 already (their Bitrix24 ids),
        as a courier picks them in the deal card; None while none has arrived."""
        ours = set(self.products)
        products = [
            int(p["id"])
            for p in _state(self.stack.emulator_url, "products")
            if p.get("xmlId") in ours
        ]
        ours = set(self.counterparties)
        companies = [
            int(c["ID"])
            for c in _state(self.stack.emulator_url, "entities/company")
            if c.get("ORIGIN_ID") in ours
        ]
        if not products or not companies:
            return None
        return self.rng.choice(products), self.rng.choice(companies)

    def courier_deal(self, entity: str) -> Offer | None:
        """Flow 3: a courier closes a won deal in the instant-order or return funnel (saved in
        the portal with its goods row), and the portal sends ONCRMDEALADD to the bridge."""
        goods = self._courier_goods()
        if goods is None:
            return None
        product, company = goods
        self.deals += 1
        deal = DEAL_BASE + self.deals
        category = COURIER_FUNNELS[entity]
        key = str(derived_id(entity, "bitrix24", f"deal:{deal}"))
        self.stack.put_entity(
            "deal",
            deal,
            {
                "TITLE": label(key, 1),
                "CATEGORY_ID": category,
                "STAGE_ID": f"C{category}:WON",
                "CLOSED": "Y",
                "COMPANY_ID": company,
                "OPPORTUNITY": "700.00",
                "CURRENCY_ID": "RUB",
                "ASSIGNED_BY_ID": 1,
                "PRODUCT_ROWS": [{"PRODUCT_ID": product, "PRICE": 350, "QUANTITY": 2}],
            },
        )
        body = event_body("ONCRMDEALADD", deal)
        return self._post(
            "instant",
            entity,
            key,
            1,
            "",
            lambda: self._client.post(
                f"{self.stack.bridge_url}/v1/bitrix24/events",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            deal=str(deal),
        )

    def price(self, product: str, ptype: str) -> Offer:
        n, ver = self._next("price", f"{product}/{ptype}")
        amount = 100 + n  # the n-th price of this pair: its version at the target
        rec = {
            "Period": "2026-01-10T00:00:00",
            "Номенклатура_Key": product,
            "ВидЦены_Key": ptype,
            "DataVersion": ver,
            "Цена": amount,
            "Active": True,
        }
        return self._post(
            "master",
            "price",
            f"{product}/{ptype}",
            n,
            ver,
            lambda: self._onec("ЦеныНоменклатуры", rec),
            product=product,
            ptype=ptype,
            amount=float(amount),
        )

    def delivery(self, key: str | None = None) -> Offer:
        key = key or str(uuid.uuid4())
        n, ver = self._next("customer_order", key)
        rec = order(key, f"Москва, {label(key, n)}", ver)
        offer = self._post(
            "delivery",
            "customer_order",
            key,
            n,
            ver,
            lambda: self._onec("ЗаказКлиента", rec),
            task=str(delivery_task_id(uuid.UUID(key))),
        )
        if n == 1 and offer.accepted:
            self.orders.append(key)
        return offer

    def cash(self) -> Offer:
        key = str(uuid.uuid4())
        n, ver = self._next("cash_receipt", key)
        rec = cash_receipt(key, f"ЧХ-{key[:6]}", _now())
        rec["DataVersion"] = ver
        # The document is in the base first (that is where /Post finds it), then 1С pushes it.
        httpx.put(
            f"{self.stack.onec_url}/_emulator/odata/{CASH_SET}", json=rec, timeout=10
        ).raise_for_status()
        return self._post(
            "cash", "cash_receipt", key, n, ver, lambda: self._onec("ПриходныйКассовыйОрдер", rec)
        )

    def complete_ready(self) -> int:
        """Couriers complete the delivered tasks of our orders (an edit in Bitrix24 and its
        ONTASKUPDATE event to the bridge); how many were completed now."""
        try:
            tasks = {t.get("xmlId"): t for t in _state(self.stack.emulator_url, "entities/task")}
        except httpx.HTTPError:
            return 0
        done = 0
        for key in list(self.orders):
            task_id = str(delivery_task_id(uuid.UUID(key)))
            task = tasks.get(task_id)
            if task is None or key in self.completed:
                continue
            self.completed.add(key)
            self.stack.put_entity(
                "task", task["id"], {"STATUS": "5", "CLOSED_DATE": "2026-12-06T15:30:00+03:00"}
            )
            body = event_body("ONTASKUPDATE", task["id"])
            self._post(
                "delivery",
                "delivery_status",
                task_id,
                1,
                "delivered",
                lambda b=body: self._client.post(
                    f"{self.stack.bridge_url}/v1/bitrix24/events",
                    content=b,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                ),
                bitrix_id=str(task["id"]),
            )
            done += 1
        return done

    def round(self) -> None:
        """One round of the mix: new records of every flow, updates of earlier ones."""
        i = self.rounds
        self.rounds += 1
        self.product()
        self.counterparty()
        if i % 3 == 0:
            self.catalog_item("warehouse", "Склады", Адрес="Москва, Складская 1")
        if i % 5 == 0:
            self.catalog_item("price_type", "ВидыЦен", ЦенаВключаетНДС=True)
        if self.products and self.price_types:
            self.price(self.rng.choice(self.products), self.rng.choice(self.price_types))
        self.delivery()
        if i % 2 == 0:
            self.courier_deal("instant_order" if i % 4 == 0 else "return")
        self.cash()
        if self.updates and i % 2 == 1:
            if self.products:
                self.product(self.rng.choice(self.products))
            if self.orders:
                pending = [o for o in self.orders if o not in self.completed]
                if pending:
                    self.delivery(self.rng.choice(pending))
        if i % 3 == 2:
            self.complete_ready()

    # -- running in the background -----------------------------------------------------------
    def start(self, pace_s: float = 0.5, max_rounds: int = 10_000) -> MixedLoad:
        """Post rounds every ``pace_s`` in a thread until stop()."""

        def loop():
            while not self._stop.is_set() and self.rounds < max_rounds:
                began = time.monotonic()
                try:
                    self.round()
                except Exception:  # noqa: BLE001 — an emulator mid-fault: the next round goes on
                    log.exception("chaos load: a round failed")
                self._stop.wait(max(0.0, pace_s - (time.monotonic() - began)))

        self._thread = threading.Thread(target=loop, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(60)

    def finish_deliveries(self, timeout_s: float = 90) -> None:
        """Complete every delivery task that reached Bitrix24 (after the load stopped)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.complete_ready()
            accepted = {o.key for o in self.offers if o.entity == "customer_order" and o.accepted}
            if accepted <= self.completed:
                return
            time.sleep(1)


# -- accounting ---------------------------------------------------------------------------
TABLES = {
    "product": "product",
    "counterparty": "counterparty",
    "warehouse": "warehouse",
    "price_type": "price_type",
    "price": "price",
    "customer_order": "customer_order",
    "cash_receipt": "cash_receipt",
    "instant_order": "instant_order",
    "return": "return",
}


@dataclass
class Tally:
    """What became of the offered records (the chaos report's figures) and the evidence."""

    offered: int = 0
    accepted: int = 0
    stored: int = 0
    at_target: int = 0
    dead_lettered: int = 0  # records in the dlq.* topics
    lost: int = 0
    duplicated: int = 0
    lost_records: list[dict] = field(default_factory=list)
    duplicates: dict[str, list] = field(default_factory=dict)
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    order_violations: list[str] = field(default_factory=list)
    not_stored: list[dict] = field(default_factory=list)
    #: accepted, not at the target (dead-lettered or lost): what a failed verdict names
    not_at_target: list[dict] = field(default_factory=list)
    #: per flow: [accepted, at target] — shows every flow was in the load
    flows: dict[str, list[int]] = field(default_factory=dict)

    def figures(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "offered",
                "accepted",
                "stored",
                "at_target",
                "dead_lettered",
                "lost",
                "duplicated",
                "flows",
            )
        }


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _state(url: str, path: str) -> list[dict]:
    return httpx.get(f"{url}/_emulator/{path}", timeout=30).json()


class Snapshot:
    """PostgreSQL and both emulators at one moment, indexed the way ``account`` asks."""

    def __init__(self, stack: ChaosStack) -> None:
        self.rows: dict[str, dict[str, str]] = {}
        for entity, table in TABLES.items():
            self.rows[entity] = {
                str(i): v for i, v in stack.sql(f'SELECT id::text, version FROM "{table}"')
            }
        self.prices = {
            (str(p), str(t)): (i, v)
            for i, p, t, v in stack.sql(
                "SELECT id::text, product_id::text, price_type_id::text, version FROM price"
            )
        }
        self.delivered = {
            i for (i,) in stack.sql("SELECT id::text FROM delivery_task WHERE status = 'delivered'")
        }
        bx = stack.emulator_url
        self.b24: dict[str, list[dict]] = {
            "product": [
                {**p, "_key": p.get("xmlId"), "_text": p.get("name")}
                for p in _state(bx, "products")
            ],
            "counterparty": [
                {**c, "_key": c.get("ORIGIN_ID"), "_text": c.get("TITLE")}
                for c in _state(bx, "entities/company")
            ],
            "warehouse": [
                {**s, "_key": s.get("xmlId"), "_text": s.get("title")}
                for s in _state(bx, "directory/store")
            ],
            "price_type": [
                {**t, "_key": t.get("xmlId"), "_text": t.get("name")}
                for t in _state(bx, "directory/priceType")
            ],
            "customer_order": [
                {**t, "_key": t.get("xmlId"), "_text": t.get("title")}
                for t in _state(bx, "entities/task")
            ],
        }
        self.b24_prices = _state(bx, "directory/price")
        self.b24_calls = _state(bx, "calls")
        onec = stack.onec_url
        self.cash = {
            r["Ref_Key"]: r
            for r in httpx.get(
                f"{onec}/trade/odata/standard.odata/{CASH_SET}",
                params={"$format": "json"},
                timeout=30,
            ).json()["value"]
        }
        self.onec_calls = stack.onec_calls()
        self.operations = httpx.get(f"{onec}/_emulator/operations", timeout=30).json()
        #: flow 3: the 1С documents made of couriers' deals, and the deals' status fields
        self.courier_docs = {
            entity: httpx.get(
                f"{onec}/trade/odata/standard.odata/{entity_set}",
                params={"$format": "json"},
                timeout=30,
            ).json()["value"]
            for entity, entity_set in COURIER_SETS.items()
        }
        status_field = stack.settings.flows.deal_status_field
        self.deal_status = {str(d["ID"]): d.get(status_field) for d in _state(bx, "entities/deal")}

    def target_text(self, entity: str, key: str) -> str | None:
        found = [o["_text"] for o in self.b24.get(entity, []) if o["_key"] == key]
        return found[0] if found else None

    def price_at_target(self, product: str, ptype: str) -> float | None:
        pid = next((p["id"] for p in self.b24["product"] if p["_key"] == product), None)
        tid = next((t["id"] for t in self.b24["price_type"] if t["_key"] == ptype), None)
        found = [
            p["price"]
            for p in self.b24_prices
            if pid is not None and p["productId"] == pid and p["catalogGroupId"] == tid
        ]
        return float(found[0]) if found else None


def _later(offers: list[Offer], offer: Offer) -> list[Offer]:
    """This offer and the ones of the same key offered after it (they may supersede it)."""
    return [o for o in offers if o.entity == offer.entity and o.key == offer.key and o.n >= offer.n]


def _stored(snap: Snapshot, offers: list[Offer], offer: Offer) -> bool:
    if offer.entity == "delivery_status":
        return offer.key in snap.delivered
    if offer.entity in COURIER_SETS:  # born in Bitrix24: its version is the portal's stamp
        return offer.key in snap.rows[offer.entity]
    if offer.entity == "price":  # the bridge's key is the register's dimensions
        held = snap.prices.get((offer.extra["product"], offer.extra["ptype"]), (None, None))[1]
    else:
        held = snap.rows[offer.entity].get(offer.key.lower())
    return held is not None and held in {o.version for o in _later(offers, offer)}


def _at_target(snap: Snapshot, offers: list[Offer], offer: Offer) -> bool:
    later = _later(offers, offer)
    if offer.entity == "cash_receipt":
        return bool(snap.cash.get(offer.key, {}).get("Posted"))
    if offer.entity in COURIER_SETS:  # the posted 1С document, and its status on the deal
        docs = [
            d
            for d in snap.courier_docs[offer.entity]
            if str(d["Ref_Key"]).lower() == offer.key.lower()
        ]
        return (
            len(docs) == 1
            and bool(docs[0].get("Posted"))
            and snap.deal_status.get(offer.extra["deal"]) == "recorded"
        )
    if offer.entity == "delivery_status":
        return any(
            r.get("task_id") == offer.key and r.get("delivery_status") == "delivered"
            for r in snap.operations
            if r.get("operation") == "delivery_status"
        )
    if offer.entity == "price":
        held = snap.price_at_target(offer.extra["product"], offer.extra["ptype"])
        return held is not None and held in {o.extra["amount"] for o in later}
    key = offer.extra.get("task", offer.key)
    text = snap.target_text(offer.entity, key) or ""
    return any(text.endswith(label(offer.key, o.n)) for o in later)


def settle(
    stack: ChaosStack,
    load: MixedLoad,
    *,
    timeout_s: float,
    quiet_s: float = 30,
    during=None,
    dlq_after_s: float = 6.0,
    replayed: frozenset[str] = frozenset(),
) -> float:
    """Wait until every accepted record is at its target or dead-lettered (and every
    delivered order completed by its courier), or nothing moved for ``quiet_s``, or
    ``timeout_s``; seconds waited. The DLQs are read only once progress pauses for
    ``dlq_after_s`` (a dead-lettered record never arrives, so waiting for it would always
    cost the whole ``quiet_s``). ``during()`` runs each poll (a supervisor's revive).
    ``replayed``: coordinates of DLQ records just replayed — they stay in their topics, but
    their records are on their way again, so only a new DLQ record counts as an end."""
    began = last_change = last_dlq = time.monotonic()
    seen = -1
    while time.monotonic() - began < timeout_s:
        if during:
            during()
        load.complete_ready()
        try:
            snap = Snapshot(stack)
        except Exception:  # noqa: BLE001 — a target mid-restart: poll again
            time.sleep(1)
            continue
        accepted = [o for o in load.offers if o.accepted]
        missing = [o for o in accepted if not _at_target(snap, load.offers, o)]
        done = len(accepted) - len(missing)
        absent = {o.key for o in missing}  # an order not at Bitrix24 has no task to complete
        # A change parked on the delayed retry path is in flight, not lost: its next attempt
        # may be a whole backoff away (retry.max_delay_s, 30 s by default), longer than a
        # quiet window, so progress is "done changed" or "something is still parked".
        parked = _parked(stack) if missing else 0
        if done != seen or parked:
            seen, last_change = done, time.monotonic()
        now = time.monotonic()
        if missing and now - last_change > dlq_after_s and now - last_dlq > dlq_after_s:
            last_dlq = now
            dead = dead_keys(stack, replayed)
            missing = [o for o in missing if not _dead(snap, o, dead)]
        orders = {o.key for o in accepted if o.entity == "customer_order"}
        waiting = orders - load.completed - absent
        if not missing and not waiting:
            break
        if now - last_change > quiet_s:
            break
        time.sleep(1.5)
    return time.monotonic() - began


def _parked(stack: ChaosStack) -> int:
    """Changes waiting on egress's delayed retry path (0 while PostgreSQL is unreachable:
    an outage scenario's settle must not fail on its own probe)."""
    try:
        return stack.sql("SELECT count(*) FROM egress_parked")[0][0]
    except psycopg.Error:
        return 0


def dead_keys(stack: ChaosStack, replayed: frozenset[str] = frozenset()) -> set[str]:
    """The keys of every dead-lettered record (lower case), but those ``replayed``."""
    return {e.entity.lower() for e in dlq_entries(stack) if e.coordinates not in replayed}


class Laps:
    """Seconds spent per phase of a scenario (for its report row: where the time goes)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.seconds: dict[str, float] = {}

    def __call__(self, phase: str) -> None:
        """The time since the previous lap belongs to ``phase`` (added up if repeated)."""
        now = time.monotonic()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + now - self.last, 1)
        self.last = now


def _dead(snap: Snapshot, offer: Offer, dlq_keys: set[str]) -> bool:
    """Whether ``offer`` is in a DLQ: by its key, its delivery task, its price's canonical id
    or its Bitrix24 object (task or deal id)."""
    keys = {offer.key.lower(), str(offer.extra.get("task", "")).lower()}
    if offer.entity == "price":  # the canonical id, the key after normalization
        keys.add(str(snap.prices.get((offer.extra["product"], offer.extra["ptype"]), ("",))[0]))
    bitrix_id = offer.extra.get("bitrix_id") or offer.extra.get("deal")
    return bool(keys & dlq_keys) or any(bitrix_id and bitrix_id in k for k in dlq_keys)


def dlq_entries(stack: ChaosStack) -> list:
    """Every record of the test's dlq.* topics. The offsets of all of them are read at once
    and only topics holding records are scanned: a scan per topic (two admin clients and a
    probe consumer each, for some 25 mostly empty topics) cost seconds per call, and the
    scenarios ask every few seconds while they settle."""
    from confluent_kafka.admin import OffsetSpec

    from mmstream.dlq.topics import dlq_topics
    from mmstream.errors import TopicMissing
    from mmstream.kafka.admin import admin_client, existing_topics
    from mmstream.kafka.lag import end_offsets, list_offsets
    from mmstream.topics import load_catalog

    admin = admin_client(stack.settings)
    have = existing_topics(admin)  # declared, not on this cluster: lost in a broker restart
    tps = [
        (topic, p)
        for topic in dlq_topics(stack.settings, load_catalog(stack.settings.topics_file))
        if topic in have
        for p in range(have[topic])
    ]
    lows = list_offsets(admin, tps, OffsetSpec.earliest())
    highs = end_offsets(stack.settings.kafka, tps, admin=admin)
    busy = sorted(
        {t for t, p in tps if highs[(t, p)] > max(0, lows[(t, p)])}, key=[t for t, _ in tps].index
    )

    def scan(topic: str) -> list:
        try:
            return list(DlqReader(stack.settings, topic, idle_timeout_s=5).scan())
        except TopicMissing:  # gone since the listing (a broker restart)
            return []

    # Each scan waits on the broker more than it works: side by side.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [entry for entries in pool.map(scan, busy) for entry in entries]


def duplicates(stack: ChaosStack, snap: Snapshot) -> dict[str, list]:
    """Repeated changes in PostgreSQL and repeated creates/postings at the targets."""
    out: dict[str, list] = {}
    # A reconcile repair re-states a stored version on purpose (a new outbox entry marked
    # ``mm.reconcile``, stages/outbox/restate.py): what repeats a change is the sink's entries.
    out["outbox"] = [
        list(r)
        for r in stack.sql(
            "SELECT entity, entity_id, version, count(*) FROM outbox "
            "WHERE NOT coalesce(headers ? 'mm.reconcile', false) GROUP BY 1, 2, 3 "
            "HAVING count(*) > 1"
        )
    ]
    for entity, objects in snap.b24.items():
        counts = Counter(o["_key"] for o in objects if o["_key"])
        out[f"bitrix24.{entity}"] = [k for k, c in counts.items() if c > 1]
    pairs = Counter((p["productId"], p["catalogGroupId"]) for p in snap.b24_prices)
    out["bitrix24.price"] = [list(k) for k, c in pairs.items() if c > 1]
    # Posting a posted document again is idempotent in 1С (no second movement), so a retry
    # after an answer the egress never got is fine; posting again after a delivered answer
    # is a double posting.
    answered = Counter(
        c["path"]
        for c in snap.onec_calls
        if c["interface"] == "odata"
        and c["operation"] == "odata_post"
        and c["status"] == 200
        and c.get("storm") not in NOT_ANSWERED
    )
    out["onec.posted_twice"] = [
        {
            "path": p,
            "calls": [
                (round(c["ts"], 2), c["operation"], c["status"], c.get("storm"))
                for c in snap.onec_calls
                if c["path"] == p
            ],
        }
        for p, n in answered.items()
        if n > 1
    ]
    for entity, docs in snap.courier_docs.items():  # one 1С document per courier's deal
        made = Counter(
            str(d.get("мм_ИдентификаторИсточника") or d["Ref_Key"]).lower() for d in docs
        )
        out[f"onec.{entity}_created_twice"] = [k for k, c in made.items() if c > 1]
    confirmations = Counter(
        r.get("task_id") for r in snap.operations if r.get("operation") == "delivery_status"
    )
    out["onec.confirmed_twice"] = [k for k, c in confirmations.items() if c > 1]
    return {k: v for k, v in out.items() if v}


def order_violations(snap: Snapshot) -> list[str]:
    """Objects whose writes at Bitrix24 went back to an older version (from the call log:
    the order the emulator executed them in)."""
    last: dict[str, int] = {}
    bad = []
    for call in snap.b24_calls:
        if call["status"] != 200 or call["method"] == "batch" or not _WRITES.search(call["method"]):
            continue
        for key, n in LABEL.findall(json.dumps(call["params"], ensure_ascii=False)):
            n = int(n)
            if n < last.get(key, 0):
                bad.append(f"{call['method']} {key}: v{n} after v{last[key]}")
            last[key] = max(last.get(key, 0), n)
    return bad


def account(
    stack: ChaosStack, offers: list[Offer], *, explained: set[int] | None = None, dlq: bool = True
) -> Tally:
    """The figures of a run (see the module docstring). ``explained``: ids (``id(offer)``)
    of accepted offers whose loss is expected and explained by the caller (the memory-only
    broker's restart); they count as lost in ``lost_records`` with ``explained: True`` but
    not in ``lost``."""
    snap = Snapshot(stack)
    entries = dlq_entries(stack) if dlq else []
    dlq_keys = {e.entity.lower() for e in entries}
    tally = Tally(offered=len(offers), dead_lettered=len(entries))
    tally.dlq_reasons = dict(Counter(f"{e.stage}:{e.code}" for e in entries))
    for offer in offers:
        if not offer.accepted:
            continue
        tally.accepted += 1
        stored = _stored(snap, offers, offer)
        at_target = _at_target(snap, offers, offer)
        dead = _dead(snap, offer, dlq_keys)
        tally.stored += stored
        tally.at_target += at_target
        per_flow = tally.flows.setdefault(offer.flow, [0, 0])
        per_flow[0] += 1
        per_flow[1] += at_target
        if not at_target:
            tally.not_at_target.append(
                {
                    "entity": offer.entity,
                    "key": offer.key,
                    "n": offer.n,
                    "dead": dead,
                    **offer.extra,
                }
            )
        if not stored and not dead:
            tally.not_stored.append({"entity": offer.entity, "key": offer.key, "n": offer.n})
        if not (stored and at_target) and not dead:
            lost = {
                "entity": offer.entity,
                "key": offer.key,
                "n": offer.n,
                "stored": stored,
                "at_target": at_target,
                "explained": id(offer) in (explained or set()),
                "answered_at": offer.answered_at,
            }
            tally.lost_records.append(lost)
            tally.lost += not lost["explained"]
    tally.duplicates = duplicates(stack, snap)
    tally.duplicated = sum(len(v) for v in tally.duplicates.values())
    tally.order_violations = order_violations(snap)
    return tally
