"""Helpers for scale-out tests: a steady 1С load posted in the background, what each worker
process did (from its JSON log), and consumer group membership as the broker reports it."""

from __future__ import annotations

import base64
import json
import random
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
from confluent_kafka.admin import AdminClient

from tests.support.processes import Proc
from tests.support.stack import Pipeline, onec_product


def data_version(n: int) -> str:
    """A DataVersion shaped like 1С's (base64 of 8 bytes) for the n-th version."""
    return base64.b64encode(struct.pack(">II", n, 0)).decode()


@dataclass
class Product:
    """What the load told the bridge about one product (only accepted versions count)."""

    ref: str
    partition: int = -1
    versions: list[str] = field(default_factory=list)
    name: str = ""


class SteadyLoad(threading.Thread):
    """Posts batches of new products and new versions of earlier ones until stopped.

    A batch the bridge does not accept whole is re-sent unchanged (as 1С re-sends an
    exchange), so every version in :attr:`products` is known to be in Kafka.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        batch: int = 10,
        pause_s: float = 0.15,
        update_share: float = 0.3,
        max_products: int = 400,
    ) -> None:
        super().__init__(name="steady-load", daemon=True)
        self.pipeline = pipeline
        self.batch = batch
        self.pause_s = pause_s
        self.update_share = update_share
        self.max_products = max_products
        self.products: dict[str, Product] = {}
        self.batches = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._rng = random.Random(7)

    @property
    def versions(self) -> int:
        """Accepted versions so far, over all products."""
        return sum(len(p.versions) for p in self.products.values())

    def stop(self) -> None:
        """Stop after the batch in flight; re-raises an error the load thread met."""
        self._halt.set()
        self.join(120)
        if self.error:
            raise AssertionError(f"the load failed: {self.error!r}") from self.error

    def wait_batches(self, more: int, timeout_s: float = 120) -> None:
        """Block until ``more`` further batches were accepted (the load is really flowing)."""
        target, deadline = self.batches + more, time.monotonic() + timeout_s
        while self.batches < target and time.monotonic() < deadline and not self.error:
            time.sleep(0.1)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.pipeline.token}"}
        try:
            with httpx.Client(
                base_url=self.pipeline.bridge_url, headers=headers, timeout=60
            ) as client:
                while not self._halt.is_set():
                    self._post(client, self._next_batch())
                    self.batches += 1
                    time.sleep(self.pause_s)
        except BaseException as exc:  # noqa: BLE001 — reported by stop()
            self.error = exc

    def _next_batch(self) -> list[tuple[Product, dict]]:
        out: list[tuple[Product, dict]] = []
        chosen: set[str] = set()
        for _ in range(self.batch):
            known = [p for p in self.products.values() if p.versions and p.ref not in chosen]
            update = known and (
                len(self.products) >= self.max_products or self._rng.random() < self.update_share
            )
            product = self._rng.choice(known) if update else Product(str(uuid.uuid4()))
            chosen.add(product.ref)
            n = len(product.versions) + 1
            out.append(
                (
                    product,
                    onec_product(
                        product.ref, data_version(n), Description=f"товар {product.ref[:8]} v{n}"
                    ),
                )
            )
        return out

    def _post(self, client: httpx.Client, batch: list[tuple[Product, dict]]) -> None:
        body = [rec for _, rec in batch]
        for _attempt in range(30):
            resp = client.post("/v1/onec/products/batch", json=body)
            if resp.status_code == 200:
                break
            time.sleep(1)
        else:
            raise AssertionError(
                f"the bridge kept refusing a batch: {resp.status_code} {resp.text}"
            )
        for (product, rec), result in zip(batch, resp.json()["results"], strict=True):
            assert result["status"] == "accepted", result
            product.partition = result["partition"]
            product.versions.append(rec["DataVersion"])
            product.name = rec["Description"]
            self.products.setdefault(product.ref, product)


def log_lines(proc: Proc, message: str) -> list[dict]:
    """The JSON log records of a process whose message is ``message``."""
    out = []
    try:
        text = proc.log_path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if message not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("message") == message:
            out.append(doc)
    return out


def sink_partitions(proc: Proc) -> set[int]:
    """Raw partitions a sink process stored batches from (its "batch stored" log lines)."""
    return {
        int(tp.rsplit("/", 1)[1])
        for doc in log_lines(proc, "batch stored")
        for tp in doc.get("offsets", {})
    }


def egress_partitions(proc: Proc, partition_of: dict[str, int]) -> set[int]:
    """Egress partitions a process delivered from (products it delivered -> their partition)."""
    return {
        partition_of[d["entity_id"]]
        for d in product_deliveries(proc)
        if d.get("entity_id") in partition_of
    }


def product_deliveries(proc: Proc) -> list[dict]:
    """The "delivered" log records of a process for products sent to Bitrix24."""
    return [
        d
        for d in log_lines(proc, "delivered")
        if d.get("target") == "bitrix24" and d.get("entity") == "product"
    ]


@dataclass(frozen=True)
class GroupView:
    """A consumer group as the broker describes it."""

    state: str
    members: dict[str, set[int]]  # member id -> partitions assigned


def describe_group(pipeline: Pipeline, group: str) -> GroupView:
    """DescribeGroups through the AdminClient. Apache Kafka lists every member with its
    assignment; the embedded broker answers with a state but no members (tansu.md)."""
    admin = AdminClient(pipeline.settings.kafka.client_config())
    desc = admin.describe_consumer_groups([group], request_timeout=15)[group].result()
    members = {
        m.member_id: {
            tp.partition for tp in (m.assignment.topic_partitions if m.assignment else [])
        }
        for m in desc.members
    }
    return GroupView(desc.state.name, members)
