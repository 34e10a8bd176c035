"""A realistic demo load for `mmctl run`, built from the captured 1С sample data.

Products come from the real УТ catalog export (CommerceML offers: ids and names) shaped as
1С OData Номенклатура records (the captured OData record is the template). The load then
mixes what a real 1С exchange sends: new versions, re-sends of the same version (exchange
plans re-send until acknowledged), stale replays, new products, and now and then a broken
record that the bridge must refuse.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import random
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from connectors.ingress.auth import mint_token
from mmstream.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
_CML_NS = "{urn:1C.ru:commerceml_2}"


def _version(n: int) -> str:
    # Shaped like real DataVersion values ("AAAAAQAAAAA="): base64 of 8 bytes.
    return base64.b64encode(struct.pack(">II", n, 0)).decode()


def catalog_records(fixtures: Path = FIXTURES) -> list[dict]:
    """Номенклатура records: the OData fixture plus one per CommerceML offer."""
    template_doc = json.loads(
        (fixtures / "onec_odata" / "bp30_Catalog_Nomenklatura.json").read_text("utf-8")
    )
    template = template_doc["value"][0]
    records = [copy.deepcopy(template)]
    root = ET.parse(fixtures / "commerceml" / "irpsv_real-1c-ut101_import.xml").getroot()  # noqa: S314 — our own fixture
    for offer in root.iter():
        if offer.tag.removeprefix(_CML_NS) != "Предложение":
            continue
        fields = {child.tag.removeprefix(_CML_NS): (child.text or "").strip() for child in offer}
        ref = fields.get("Ид", "").split("#")[0]
        if len(ref) != 36 or not fields.get("Наименование"):
            continue
        rec = copy.deepcopy(template)
        rec.update(
            {
                "Ref_Key": ref,
                "Description": fields["Наименование"],
                "НаименованиеПолное": fields["Наименование"],
                "Code": f"00-{len(records):08d}",
            }
        )
        records.append(rec)
    return records


class DemoLoad:
    """Posts the catalog, then a steady mix of changes, duplicates, stale and bad records."""

    def __init__(self, settings: Settings, bridge_url: str, seed: int = 7) -> None:
        self.bridge_url = bridge_url
        self.rate = settings.embedded.demo_rate_per_s
        token = mint_token(settings.auth, subject="demo-1c", roles=["1c"], ttl_s=7 * 24 * 3600)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = random.Random(seed)  # noqa: S311 — a reproducible demo, not a secret
        self.products = catalog_records()
        self.history: dict[str, list[dict]] = {}

    async def run(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.bridge_url, headers=self.headers, timeout=30
        ) as client:
            for rec in self.products:
                rec["DataVersion"] = _version(1)
                self.history[rec["Ref_Key"]] = [dict(rec)]
            await self._post(client, "/v1/onec/products/batch", {"value": self.products})
            n = 1
            while True:
                await asyncio.sleep(1.0 / self.rate)
                n += 1
                await self._step(client, n)

    async def _step(self, client: httpx.AsyncClient, n: int) -> None:
        roll = self.rng.random()
        rec = self.rng.choice(self.products)
        ref = rec["Ref_Key"]
        if roll < 0.55:  # a real change
            rec["DataVersion"] = _version(len(self.history[ref]) + 1)
            rec["Description"] = (
                f"{rec['НаименованиеПолное'][:80]} (ред. {len(self.history[ref]) + 1})"
            )
            self.history[ref].append(dict(rec))
            await self._post(client, "/v1/onec/products", rec)
        elif roll < 0.80:  # the exchange re-sends the current version
            await self._post(client, "/v1/onec/products", rec)
        elif roll < 0.90 and len(self.history[ref]) > 1:  # a stale replay of an older version
            await self._post(client, "/v1/onec/products", self.history[ref][0])
        elif roll < 0.97:  # a new product appears
            new = dict(
                rec,
                Ref_Key=str(_uuid(self.rng)),
                DataVersion=_version(1),
                Description=f"Новый товар {n}",
                Code=f"00-N{n:07d}",
            )
            self.products.append(new)
            self.history[new["Ref_Key"]] = [dict(new)]
            await self._post(client, "/v1/onec/products", new)
        else:  # a broken record: the bridge answers 422 and publishes nothing
            await self._post(
                client, "/v1/onec/products", {"Ref_Key": "not-a-guid", "DataVersion": ""}
            )

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict) -> None:
        try:
            await client.post(path, json=body)
        except httpx.HTTPError as exc:
            log.warning("demo post failed: %s", exc)


def _uuid(rng: random.Random):
    import uuid

    return uuid.UUID(int=rng.getrandbits(128), version=4)
