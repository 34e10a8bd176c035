"""The records the benchmarks send: 1С Номенклатура records shaped like the real OData
fixture, in the mix a real 1С exchange produces (new versions, re-sends of the same
version, stale replays of an older version), and their raw-topic form.

The raw-topic form is what the bridge writes (key = Ref_Key, value = compact JSON,
CloudEvents headers), so the sink worker pays exactly the per-record costs it pays in
production (header decoding, JSON parsing, pydantic validation).
"""

from __future__ import annotations

import base64
import json
import random
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from devstack.bench.processes import BenchError
from mmstream.envelope import change_id
from mmstream.settings import REPO_ROOT

FIXTURE = REPO_ROOT.parent / "shared" / "fixtures" / "onec_odata" / "bp30_Catalog_Nomenklatura.json"
# A Ref_Key that never occurs in the fixture: the load generator swaps it for fresh ids.
PLACEHOLDER_REF = "ffffffff-ffff-4fff-bfff-ffffffffffff"


def _version(n: int) -> str:
    # Shaped like real DataVersion values ("AAAAAQAAAAA="): base64 of 8 bytes.
    return base64.b64encode(struct.pack(">II", n, 0)).decode()


V1, V2 = _version(1), _version(2)


def template_record(fixture: Path = FIXTURE) -> dict:
    """The captured OData record (about 2.8 KB as compact UTF-8 JSON)."""
    try:
        doc = json.loads(fixture.read_text("utf-8"))
    except OSError as exc:
        raise BenchError(f"the 1С record fixture is missing ({fixture}): {exc}") from exc
    return dict(doc["value"][0])


def encode(record: dict) -> bytes:
    """The bytes the bridge publishes for a record of a batch (compact, UTF-8)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def record_for(template: dict, ref: str, version: str, number: int) -> dict:
    """One product version; the content depends only on (ref, version, number), so a
    re-send is byte-identical to the original, as 1С's re-sends are."""
    changed = " (изм.)" if version != V1 else ""
    return {
        **template,
        "Ref_Key": ref,
        "DataVersion": version,
        "Code": f"00-{number:08d}",
        "Description": f"Товар {number}{changed}",
        "НаименованиеПолное": f"Товар №{number}{changed}",
    }


@dataclass(frozen=True)
class ProductMix:
    """A send order of (ref, version, product number) and what the sink must end up with."""

    sends: list[tuple[str, str, int]]
    products: int  # distinct Ref_Keys = rows expected in `product`
    new_versions: int  # distinct (Ref_Key, DataVersion) = entries expected in `outbox`
    duplicates: int  # re-sends of the current version
    stale: int  # re-sends of an older version after a newer one
    two_versions: int  # products whose final version must be V2 (stale must not win)

    def __len__(self) -> int:
        return len(self.sends)


def product_mix(
    total: int, *, duplicate_share: float = 0.20, stale_share: float = 0.05, seed: int = 20240601
) -> ProductMix:
    """``total`` sends: ~75 % new versions, ``duplicate_share`` re-sends of the current
    version, ``stale_share`` replays of V1 after V2.

    Order (each phase shuffled): V1 of every product; then V2 of some products mixed with
    re-sends of the current V1 of the others; then the stale V1 replays. Records of one
    product share a partition (keyed by Ref_Key), so this order is what the sink sees.
    """
    rng = random.Random(seed)  # noqa: S311 — seeded on purpose: the same workload every run
    stale = round(total * stale_share)
    duplicates = round(total * duplicate_share)
    products = total - duplicates - 2 * stale  # every stale replay needs a V2 sent before it
    if products <= stale:
        raise BenchError(f"a mix of {total} records is too small for these shares")
    refs = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(products)]
    number = {ref: i for i, ref in enumerate(refs)}
    two = refs[:stale]
    one = refs[stale:]
    phase1 = [(r, V1) for r in refs]
    phase2 = [(r, V2) for r in two] + [(rng.choice(one), V1) for _ in range(duplicates)]
    phase3 = [(r, V1) for r in two]
    sends: list[tuple[str, str, int]] = []
    for phase in (phase1, phase2, phase3):
        rng.shuffle(phase)
        sends += [(r, v, number[r]) for r, v in phase]
    return ProductMix(sends, products, products + stale, duplicates, stale, stale)


@dataclass(frozen=True)
class RawRecord:
    """A record as the bridge puts it on the raw topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def raw_record(record: dict) -> RawRecord:
    """The bridge's raw-topic form of a record: same key, bytes and CloudEvents headers."""
    from connectors.ingress.publish import onec_event

    ref, version = record["Ref_Key"], record["DataVersion"]
    event = onec_event(
        entity="product",
        source_id=ref,
        version=version,
        principal="bench",
        request_id=uuid.uuid4().hex,
        event_id=change_id("product", ref, version),
    )
    return RawRecord(ref.encode(), encode(record), event.headers())


def mix_raw_records(mix: ProductMix, template: dict) -> list[RawRecord]:
    """The raw-topic records of a product mix, in send order."""
    return [raw_record(record_for(template, ref, version, n)) for ref, version, n in mix.sends]


def fresh_raw_records(count: int, template: dict) -> list[RawRecord]:
    """``count`` records of distinct new products (what the batch benchmark posts)."""
    return [raw_record(record_for(template, str(uuid.uuid4()), V1, i)) for i in range(count)]
