"""A CommerceML 3.x package split over several files, imported one file per request as 1С
does, against the real bridge, broker and PostgreSQL: the classifier's names of the first
file (price types, warehouses, property dictionaries) resolve the ids of the later ones —
across a bridge restart (another app on the same database: a replica) — and a "changes
only" classifier resolves through the last full classifier of its catalog. The names are
bounded (max_context_bytes) and purged with the session."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.commerceml.store import MAX_CATALOG_CONTEXTS, ExchangeStore
from connectors.ingress.purge import purge_once
from tests.connectors.ingress.test_commerceml_exchange import (
    OneC,
    _bridge,
    _logged,
    _read,
    _settings,
    at_default_log_level,  # noqa: F401 — the module's autouse fixture: INFO, JSON-formattable
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"
PRODUCT = "e5b1f840-7b4a-11eb-8112-00155d000d01"
VARIANT = f"{PRODUCT}#e5b1f841-7b4a-11eb-8112-00155d000d01"
RETAIL = "e5b1f820-7b4a-11eb-8112-00155d000d01"
STORE = "e5b1f830-7b4a-11eb-8112-00155d000d01"
CHAIR = "7b4e2f30-ff10-11e9-80e5-00155d010b01"
WHITE = "7b4e2f12-ff10-11e9-80e5-00155d010b01"


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _sql(settings, query: str, *params) -> list[tuple]:
    with psycopg.connect(settings.database_url.get_secret_value().replace("+psycopg", "")) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _import(onec: OneC, filename: str, data: bytes) -> None:
    onec.upload(filename, data)
    resp = onec.import_(filename)
    assert (resp.status_code, resp.text) == (200, "success"), (filename, resp.text)


def _payloads(settings, topic: str, expect: int) -> dict[str, dict]:
    return {r.key().decode(): json.loads(r.value()) for r in _read(settings, topic, expect)}


def test_a_split_package_resolves_through_the_first_files_classifier_on_another_replica(
    bridge_settings, tmp_path
):
    s = _settings(bridge_settings, tmp_path)
    with _bridge(s) as first:
        onec = OneC(first).login(s)
        assert onec.call("init").status_code == 200
        _import(onec, "import.xml", _fixture("cml3_import.xml"))
    (stored,) = _sql(s, "SELECT bytes FROM commerceml_session_context")
    assert 0 < stored[0] <= s.commerceml.max_context_bytes
    # Another bridge (a restart, or the next replica behind the balancer), same session.
    with _bridge(s) as second:
        later = OneC(second)
        later.cookie = onec.cookie
        for name in ("offers.xml", "prices.xml", "rests.xml"):
            _import(later, name, _fixture(f"cml3_{name}"))

    products = _payloads(s, "raw.onec.product", 1)
    (brand,) = products[PRODUCT]["properties"]
    assert (brand["name"], brand["labels"], brand["value_ids"]) == (
        "Бренд",
        ["Северный ветер"],
        ["e5b1f811-7b4a-11eb-8112-00155d000d01"],
    )
    prices = _payloads(s, "raw.onec.price", 2)
    assert {k: (p["price_type_name"], p["currency"], p["price"]) for k, p in prices.items()} == {
        f"{PRODUCT}:{RETAIL}": ("Розничная", "RUB", "790"),
        f"{VARIANT}:{RETAIL}": ("Розничная", "RUB", "850.00"),
    }
    stock = _payloads(s, "raw.onec.stock", 2)
    assert {
        k: (p["warehouse_id"], p["warehouse_name"], p["quantity"]) for k, p in stock.items()
    } == {f"{PRODUCT}:{STORE}": (STORE, "Основной склад", "14"), VARIANT: (None, None, "3")}


def test_a_changes_only_classifier_resolves_through_the_last_full_one(bridge_settings, tmp_path):
    """Yesterday's session sent the full classifier (Цвет: Чёрный, Белый); today's sends only
    the changes (Цвет: Чёрный) and a product whose colour is Белый."""
    s = _settings(bridge_settings, tmp_path)
    changes = _fixture("cml210_import_changes.xml").decode()
    full = changes.replace(
        'СодержитТолькоИзменения="true"', 'СодержитТолькоИзменения="false"'
    ).replace(
        "</Справочник>",
        f"</Справочник><Справочник><ИдЗначения>{WHITE}</ИдЗначения>"
        "<Значение>Белый</Значение></Справочник>",
        1,
    )
    full = full[: full.index("<Каталог")] + full[full.index("</Каталог>") + len("</Каталог>") :]
    with _bridge(s) as client:
        yesterday = OneC(client).login(s)
        yesterday.call("init")
        _import(yesterday, "import.xml", full.encode())
        today = OneC(client).login(s)
        today.call("init")
        _import(today, "import.xml", changes.encode())
    products = _payloads(s, "raw.onec.product", 2)
    colours = [p["labels"] for p in products[CHAIR]["properties"] if p["name"] == "Цвет"]
    assert colours == [["Чёрный"], ["Белый"]]
    assert [k for (k,) in _sql(s, "SELECT catalog_id FROM commerceml_catalog_context")] == [
        "7b4e2f00-ff10-11e9-80e5-00155d010b01"
    ]


def test_the_names_are_capped_and_purged_with_the_session(bridge_settings, tmp_path, caplog):
    capped = _settings(bridge_settings, tmp_path, max_context_bytes=200)
    with _bridge(capped) as client:
        onec = OneC(client).login(capped)
        onec.call("init")
        _import(onec, "import.xml", _fixture("cml3_import.xml"))  # imported all the same
    (warned,) = _logged(caplog, "commerceml names not kept for later files: over max_context_bytes")
    assert warned.levelno == logging.WARNING and (warned.code, warned.cap) == (
        "context_too_large",
        200,
    )
    assert _sql(capped, "SELECT count(*) FROM commerceml_session_context") == [(0,)]

    s = _settings(bridge_settings, tmp_path)
    with _bridge(s) as client:
        onec = OneC(client).login(s)
        onec.call("init")
        _import(onec, "import.xml", _fixture("cml3_import.xml"))
    assert _sql(s, "SELECT count(*) FROM commerceml_session_context") == [(1,)]
    _sql(s, "UPDATE commerceml_session SET expires_at = now() - interval '1 second'")

    async def purge():
        engine = create_async_engine(s.require_database_url())
        try:
            return await purge_once(engine, s, budget_s=60)
        finally:
            await engine.dispose()

    assert asyncio.run(purge()).sessions >= 1
    assert _sql(s, "SELECT count(*) FROM commerceml_session_context") == [(0,)]


def test_the_kept_catalogs_are_bounded(db_url):
    """Each catalog Ид keeps its last full classifier: at most MAX_CATALOG_CONTEXTS of them,
    the least recently updated dropped first."""

    async def main():
        engine = create_async_engine(db_url)
        store = ExchangeStore(engine, 60)
        try:
            session = await store.open_session(b"\x02" * 32, "site")
            for i in range(MAX_CATALOG_CONTEXTS + 2):
                await store.put_context(session, "{}", f"catalog-{i:02}", '{"format": 1}')
            return session, await store.context(session), await store.catalog_context("catalog-00")
        finally:
            await engine.dispose()

    session, kept, oldest = asyncio.run(main())
    assert kept == {} and oldest is None
    url = db_url.replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT catalog_id FROM commerceml_catalog_context ORDER BY 1"
        ).fetchall()
    assert [r[0] for r in rows] == [f"catalog-{i:02}" for i in range(2, MAX_CATALOG_CONTEXTS + 2)]
