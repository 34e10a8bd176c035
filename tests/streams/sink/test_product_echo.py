"""ProductEcho on real PostgreSQL: Bitrix24's view of products is recognized, linked in the
crosswalk and never passed on."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.models.product import Product
from streams.records import SourceRecord
from streams.sink.product_echo import ProductEcho
from streams.sink.product_store import IncomingProduct, merge
from tests.streams.normalize.test_bitrix24_product import b24_product


def record(value: dict | None, offset: int) -> SourceRecord:
    return SourceRecord("t.raw.bitrix24.product", 0, offset, b"product:1",
                        None if value is None else json.dumps(value).encode(), [])


def test_echo_drift_and_foreign_products_are_told_apart(db_url):
    ours, edited = uuid.uuid4(), uuid.uuid4()

    async def main():
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                await merge(conn, [IncomingProduct(Product(id=p, version="v1", name="Мойка", code="m"),
                                                   "t.raw.onec.product", 0, i, {})
                                   for i, p in enumerate((ours, edited))])
            return await ProductEcho(engine).handle([
                record(b24_product(id="1", xmlId=str(ours), name="Мойка", code="m", previewText=""), 0),
                record(b24_product(id="2", xmlId=str(edited), name="Мойка (правка)", code="m",
                                   previewText=""), 1),
                record(b24_product(id="3", xmlId="чужой"), 2),
                record(None, 3),
                record({"id": "4", "xmlId": str(uuid.uuid4()), "name": ""}, 4),
            ])
        finally:
            await engine.dispose()

    outcomes = asyncio.run(main())
    assert dict(outcomes) == {"unchanged": 1, "not_owner": 1, "foreign": 2, "invalid": 1}
    with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as conn:
        links = conn.execute("SELECT canonical_id, external_id FROM crosswalk "
                             "WHERE system = 'bitrix24' ORDER BY external_id").fetchall()
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        names = conn.execute("SELECT name FROM product ORDER BY name").fetchall()
    assert links == [(str(ours), "1"), (str(edited), "2")]
    assert outbox == 2  # the two 1С versions; nothing from Bitrix24
    assert names == [("Мойка",), ("Мойка",)]


def test_json_nested_too_deep_to_read_is_counted_invalid_not_raised(db_url):
    # json.loads raises RecursionError (not a ValueError) for it: it stopped the agent.
    async def main():
        engine = create_async_engine(db_url)
        try:
            deep = SourceRecord("t.raw.bitrix24.product", 0, 0, b"product:1", b"[" * 100_000, [])
            return await ProductEcho(engine).handle([deep])
        finally:
            await engine.dispose()

    assert dict(asyncio.run(main())) == {"invalid": 1}
