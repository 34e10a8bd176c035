"""The entity benchmark's mixed load, without services: every entity (products included)
normalizes, and the derived entities (a customer order's delivery task) are counted instead
of failing the section ("N records normalized to M entities, expected one each")."""

from __future__ import annotations

from devstack.bench.entities import Load, normalized, tables
from devstack.bench.entity_workload import BUILDERS, entity_mix


def test_the_mixed_load_covers_products_and_counts_derived_entities():
    mix = entity_mix(300)
    sends = [(s, f"raw.onec.{s.entity}", 0, i) for i, s in enumerate(mix.sends)]
    load = Load(sends, dict(mix.objects), dict(mix.new_versions), dict(mix.two_versions), mix)
    incoming = normalized(load)
    orders = sum(1 for s in mix.sends if s.entity == "customer_order")
    assert "product" in BUILDERS and all(mix.objects[e] for e in BUILDERS)
    assert len(incoming) == len(load) + orders  # one delivery task per order record
    assert set(tables(incoming)) == {*BUILDERS, "delivery_task"}
