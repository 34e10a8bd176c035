"""The sink stores a product's properties (migration 0017) and puts them in the
outbox entry it writes, so norm.product and egress see what PostgreSQL holds."""

from __future__ import annotations

import uuid

from mmstream.models.product import ProductProperty
from tests.stages.sink.test_product_store import V1, V2, Offsets, merge_batches, product, sql

COLOR = ProductProperty(id="c0", name="Цвет", value="Красный", value_id="c0-red")
POWER = ProductProperty(id="p0", name="Мощность", value="2000")


def test_properties_are_stored_and_a_newer_version_replaces_them(db_url):
    ref, at = uuid.uuid4(), Offsets()
    merge_batches(
        db_url,
        [at(product(ref, V1, properties=(COLOR, POWER)))],
        [at(product(ref, V2, properties=(POWER,)))],
    )
    (stored,) = sql(db_url, "SELECT properties FROM product WHERE id = %s", ref)
    assert stored == ([POWER.model_dump()],)
    payloads = [
        r[0]["properties"]
        for r in sql(
            db_url, "SELECT payload FROM outbox WHERE entity_id = %s ORDER BY id", str(ref)
        )
    ]
    assert payloads == [[COLOR.model_dump(), POWER.model_dump()], [POWER.model_dump()]]


def test_a_product_without_properties_stores_an_empty_list(db_url):
    ref = uuid.uuid4()
    merge_batches(db_url, [Offsets()(product(ref, V1))])
    assert sql(db_url, "SELECT properties FROM product WHERE id = %s", ref) == [([],)]
