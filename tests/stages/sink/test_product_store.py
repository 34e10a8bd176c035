"""Products through the one entity store (stages/sink/entity_store.merge): version-aware
batched upsert with the outbox, on real PostgreSQL — what the product sink's own store
proved, now proved of the path every entity takes."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.envelope import change_id
from mmstream.models.product import Product
from stages.normalize.onec_product import parse
from stages.sink import entity_store
from stages.sink.entity_store import Incoming, MergeCounts

TOPIC = "t.raw.onec.product"
FIXTURE = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "fixtures"
    / "onec_odata"
    / "bp30_Catalog_Nomenklatura.json"
)
V1, V2, V3 = "AAAAAQAAAAA=", "AAAAAgAAAAA=", "AAAAAwAAAAA="


# ------------------------------------------------------------------ helpers


def product(ref: uuid.UUID, version: str, name: str = "Мойка", **fields) -> Product:
    return Product(id=ref, source="onec", version=version, name=name, **fields)


def event_id(ref: uuid.UUID, version: str) -> uuid.UUID:
    """The change id of a 1С version: the one the bridge answers the POST with."""
    return uuid.UUID(change_id("product", str(ref), version))


def result(
    total: int = 0, changed: int = 0, inserted: int = 0, duplicate: int = 0, stale: int = 0
) -> MergeCounts:
    """The counts of a merge of 1С products (no non-owner, no unchanged skips here)."""
    return MergeCounts(
        total=total, changed=changed, inserted=inserted, duplicate=duplicate, stale=stale
    )


async def merge(conn, batch: list[Incoming]) -> MergeCounts:
    return await entity_store.merge(conn, Product, batch)


class Offsets:
    """Hands out increasing source offsets, like a partition would."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self, p: Product, partition: int = 2, headers: dict | None = None) -> Incoming:
        self.next += 1
        if headers is None:
            headers = {"ce_id": change_id("product", str(p.id), p.version)}
        return Incoming(p, TOPIC, partition, self.next - 1, headers)


def merge_batches(db_url: str, *batches: list[Incoming]) -> list[MergeCounts]:
    """Merge each batch in its own committed transaction."""

    async def main():
        engine = create_async_engine(db_url)
        try:
            results = []
            for batch in batches:
                async with engine.begin() as conn:
                    results.append(await merge(conn, batch))
            return results
        finally:
            await engine.dispose()

    return asyncio.run(main())


def sql(db_url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(query, params).fetchall()


def counts(db_url: str) -> tuple[int, int, int]:
    """(products, outbox entries, seen versions)."""
    return sql(
        db_url,
        "SELECT (SELECT count(*) FROM product), (SELECT count(*) FROM outbox), "
        "(SELECT count(*) FROM source_version)",
    )[0]


def snapshot(db_url: str) -> tuple[list, list, list]:
    """Everything merge can change, to compare before and after a replay."""
    return (
        sql(db_url, "SELECT * FROM product ORDER BY id"),
        sql(db_url, "SELECT * FROM outbox ORDER BY id"),
        sql(
            db_url,
            "SELECT entity, source_id, version, seen_at FROM source_version "
            "ORDER BY source_id, version",
        ),
    )


def row(db_url: str, ref: uuid.UUID) -> tuple:
    return sql(db_url, "SELECT version, name FROM product WHERE id = %s", ref)[0]


def outbox(db_url: str, ref: uuid.UUID | None = None) -> list[tuple]:
    """(id, entity_id, version, source_offset) in outbox id order."""
    where, params = ("WHERE entity_id = %s", (str(ref),)) if ref else ("", ())
    return sql(
        db_url,
        f"SELECT id, entity_id, version, source_offset FROM outbox {where} ORDER BY id",
        *params,
    )


# ------------------------------------------------------------------ new products


def test_new_products_get_a_row_and_one_outbox_entry_each(db_url):
    at = Offsets()
    a, b = uuid.uuid4(), uuid.uuid4()
    parent, unit = uuid.uuid4(), uuid.uuid4()
    batch = [
        at(
            product(
                a,
                V1,
                "Мойка",
                code="00-00000001",
                full_name="Мойка кухонная",
                article="M-1",
                parent_id=parent,
                unit_id=unit,
            )
        ),
        at(
            product(b, V1, "Смеситель", is_service=True, deleted=True),
            headers={"x-request-id": "req-7", "ce_id": "abc", "ce_source": "/1С/УТ"},
        ),
    ]
    (merged,) = merge_batches(db_url, batch)
    assert merged == result(total=2, changed=2, inserted=2)

    rows = sql(
        db_url,
        "SELECT id, source, version, code, name, full_name, article, parent_id, "
        "unit_id, is_folder, is_service, deleted, event_id, revision, writers "
        "FROM product ORDER BY name",
    )
    assert rows == [
        (
            a,
            "onec",
            V1,
            "00-00000001",
            "Мойка",
            "Мойка кухонная",
            "M-1",
            parent,
            unit,
            False,
            False,
            False,
            event_id(a, V1),
            1,
            ["onec"],
        ),
        (
            b,
            "onec",
            V1,
            "",
            "Смеситель",
            "",
            "",
            None,
            None,
            False,
            True,
            True,
            event_id(b, V1),
            1,
            ["onec"],
        ),
    ]

    entries = sql(
        db_url,
        "SELECT event_id, entity, entity_id, change, version, source_topic, "
        "source_partition, source_offset, payload, headers, published_at "
        "FROM outbox ORDER BY id",
    )
    assert len(entries) == 2
    first, second = entries
    assert first[:8] == (event_id(a, V1), "product", str(a), "upsert", V1, TOPIC, 2, 0)
    # The whole canonical row, with the catalog's revision (analysts keep the highest).
    assert first[8] == {
        "id": str(a),
        "source": "onec",
        "version": V1,
        "source_stamp": None,
        "deleted": False,
        "external_ids": {},
        "code": "00-00000001",
        "name": "Мойка",
        "full_name": "Мойка кухонная",
        "article": "M-1",
        "barcode": "",
        "parent_id": str(parent),
        "unit_id": str(unit),
        "is_folder": False,
        "is_service": False,
        "properties": [],
        "revision": 1,
    }
    assert first[10] is None  # not published yet
    assert second[2] == str(b) and second[7] == 1
    assert second[8]["deleted"] is True and second[8]["parent_id"] is None
    assert second[9] == {"x-request-id": "req-7", "ce_id": "abc", "ce_source": "/1С/УТ"}
    assert sorted(sql(db_url, "SELECT entity, source_id, version FROM source_version")) == sorted(
        [("product", str(a), V1), ("product", str(b), V1)]
    )


def test_the_real_fixture_record_is_stored(db_url):
    raw = json.dumps(json.loads(FIXTURE.read_text(encoding="utf-8"))["value"][0]).encode()
    p = parse(raw)
    (merged,) = merge_batches(db_url, [Offsets()(p)])
    assert merged.changed == 1
    assert sql(db_url, "SELECT name, parent_id, unit_id FROM product WHERE id = %s", p.id) == [
        ("Мойка", None, uuid.UUID("f40235d5-d84c-11ea-8133-0050569f62a1"))
    ]


def test_an_empty_batch_is_an_empty_result(db_url):
    assert merge_batches(db_url, []) == [result()]
    assert counts(db_url) == (0, 0, 0)


# ------------------------------------------------------------------ duplicates and stale


def test_the_same_version_again_changes_nothing_and_counts_as_duplicate(db_url):
    at = Offsets()
    ref = uuid.uuid4()
    merge_batches(db_url, [at(product(ref, V1, "Мойка"))])
    before = snapshot(db_url)
    # 1С re-sends the same version (even with a different name, the version says it is the same).
    (again,) = merge_batches(db_url, [at(product(ref, V1, "Мойка (повтор)"))])
    assert again == result(total=1, duplicate=1)
    assert snapshot(db_url) == before


def test_an_older_seen_version_after_a_newer_one_is_stale(db_url):
    at = Offsets()
    ref = uuid.uuid4()
    merge_batches(db_url, [at(product(ref, V1, "старое"))], [at(product(ref, V2, "новое"))])
    assert row(db_url, ref) == (V2, "новое")
    before = snapshot(db_url)

    (replay,) = merge_batches(db_url, [at(product(ref, V1, "старое"))])
    assert replay == result(total=1, stale=1)
    assert row(db_url, ref) == (V2, "новое")
    assert snapshot(db_url) == before  # changed_at, revision and the outbox untouched too
    assert [e[2] for e in outbox(db_url, ref)] == [V1, V2]


def test_a_new_version_replaces_the_row_and_adds_an_outbox_entry(db_url):
    at = Offsets()
    ref = uuid.uuid4()
    first, second = merge_batches(
        db_url,
        [at(product(ref, V1, "Мойка"))],
        [at(product(ref, V2, "Мойка (новая)", deleted=True))],
    )
    assert second == result(total=1, changed=1)
    assert sql(db_url, "SELECT version, name, deleted, event_id, revision FROM product") == [
        (V2, "Мойка (новая)", True, event_id(ref, V2), 2)
    ]
    assert sql(db_url, "SELECT stored_at < changed_at FROM product") == [(True,)]
    assert [e[2] for e in outbox(db_url, ref)] == [V1, V2]


def test_a_new_version_that_changes_no_field_is_unchanged_and_publishes_nothing(db_url):
    # The entity path publishes real changes only (1С bumps DataVersion for attributes the
    # canonical product does not carry): the version is remembered, the row and outbox stay.
    at = Offsets()
    ref = uuid.uuid4()
    merge_batches(db_url, [at(product(ref, V1, "Мойка"))])
    (same,) = merge_batches(db_url, [at(product(ref, V2, "Мойка"))])
    assert same == MergeCounts(total=1, unchanged=1)
    assert row(db_url, ref) == (V1, "Мойка")
    assert [e[2] for e in outbox(db_url, ref)] == [V1]
    assert sql(
        db_url, "SELECT version FROM source_version WHERE source_id = %s ORDER BY version", str(ref)
    ) == [(V1,), (V2,)]


# ------------------------------------------------------------------ within one batch


def test_two_versions_of_one_product_in_one_batch(db_url):
    at = Offsets()
    ref = uuid.uuid4()
    (merged,) = merge_batches(
        db_url, [at(product(ref, V1, "первая")), at(product(ref, V2, "вторая"))]
    )
    # Every change is published, in order: the row is inserted, then changed.
    assert merged == result(total=2, changed=2, inserted=1)
    assert row(db_url, ref) == (V2, "вторая")
    entries = outbox(db_url, ref)
    assert [(e[2], e[3]) for e in entries] == [(V1, 0), (V2, 1)]
    assert entries[0][0] < entries[1][0]


def test_the_later_record_of_a_batch_wins_whatever_its_version_string(db_url):
    # DataVersion is opaque: "later" means later in the partition, not a larger string.
    at = Offsets()
    ref = uuid.uuid4()
    merge_batches(db_url, [at(product(ref, V3, "первая")), at(product(ref, V1, "вторая"))])
    assert row(db_url, ref) == (V1, "вторая")
    assert [e[2] for e in outbox(db_url, ref)] == [V3, V1]


def test_outbox_ids_follow_batch_order_across_products(db_url):
    at = Offsets()
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = [
        at(product(a, V1)),
        at(product(b, V1)),
        at(product(a, V2, "2")),
        at(product(c, V1)),
        at(product(b, V2, "2")),
        at(product(a, V3, "3")),
    ]
    (merged,) = merge_batches(db_url, batch)
    assert merged == result(total=6, changed=6, inserted=3)
    entries = outbox(db_url)
    # Ordered per product (its versions in batch order); products may interleave by round.
    for ref in (a, b, c):
        assert [(e[2], e[3]) for e in entries if e[1] == str(ref)] == [
            (i.entity.version, i.source_offset) for i in batch if i.entity.id == ref
        ]
    ids = [e[0] for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert {(r[0], r[1]) for r in sql(db_url, "SELECT id, version FROM product")} == {
        (a, V3),
        (b, V2),
        (c, V1),
    }


def test_the_same_version_twice_in_one_batch_gives_one_outbox_entry(db_url):
    at = Offsets()
    ref, other = uuid.uuid4(), uuid.uuid4()
    (merged,) = merge_batches(
        db_url,
        [at(product(ref, V1, "первая")), at(product(other, V1)), at(product(ref, V1, "первая"))],
    )
    assert merged == result(total=3, changed=2, inserted=2, duplicate=1)
    entries = outbox(db_url, ref)
    assert len(entries) == 1
    assert entries[0][3] == 0  # the first occurrence is the one recorded
    assert counts(db_url) == (2, 2, 2)


def test_a_mixed_batch_counts_new_duplicate_and_stale(db_url):
    at = Offsets()
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    merge_batches(db_url, [at(product(a, V1)), at(product(a, V2, "2")), at(product(b, V1))])
    (merged,) = merge_batches(
        db_url,
        [
            at(product(a, V1)),  # stale: seen, not current
            at(product(a, V2, "2")),  # duplicate of the current row
            at(product(b, V1)),  # duplicate
            at(product(b, V2, "2")),  # new
            at(product(c, V1)),  # new
            at(product(c, V1)),  # duplicate within the batch
        ],
    )
    assert merged == result(total=6, changed=2, inserted=1, duplicate=3, stale=1)
    assert {(r[0], r[1]) for r in sql(db_url, "SELECT id, version FROM product")} == {
        (a, V2),
        (b, V2),
        (c, V1),
    }
    assert counts(db_url) == (3, 5, 5)


# ------------------------------------------------------------------ replay and rollback


def test_replaying_a_whole_batch_changes_nothing(db_url):
    at = Offsets()
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = [
        at(product(a, V1)),
        at(product(b, V1)),
        at(product(a, V2, "2")),
        at(product(c, V1)),
        at(product(c, V1)),
    ]
    (first,) = merge_batches(db_url, batch)
    assert first.changed == 4
    before = snapshot(db_url)
    assert counts(db_url) == (3, 4, 4)

    # Offsets were not committed, the worker died: the same batch comes again, twice.
    replays = merge_batches(db_url, batch, batch)
    for replay in replays:
        assert replay.changed == 0 and replay.inserted == 0
        assert replay.total == 5
        # a@V1 was overtaken inside the batch: stale on replay; everything else is a duplicate
        assert (replay.duplicate, replay.stale) == (4, 1)
    assert snapshot(db_url) == before


def test_a_rolled_back_merge_leaves_nothing_behind(db_url):
    at = Offsets()
    existing = uuid.uuid4()
    merge_batches(db_url, [at(product(existing, V1, "было"))])
    before = snapshot(db_url)
    fresh = uuid.uuid4()
    batch = [at(product(fresh, V1)), at(product(existing, V2, "стало"))]

    async def merge_then_roll_back():
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                tx = await conn.begin()
                result = await merge(conn, batch)
                # Everything is visible inside the transaction ...
                assert result.changed == 2
                await tx.rollback()
        finally:
            await engine.dispose()

    asyncio.run(merge_then_roll_back())
    # ... and nothing of it after the rollback: no product, no outbox entry, no seen version.
    assert snapshot(db_url) == before
    assert row(db_url, existing) == (V1, "было")

    # The versions were not remembered: the redelivered batch is merged in full.
    (redelivered,) = merge_batches(db_url, batch)
    assert redelivered == result(total=2, changed=2, inserted=1)
    assert counts(db_url) == (2, 3, 3)


def test_a_merge_that_fails_writes_nothing(db_url):
    at = Offsets()
    good, bad = uuid.uuid4(), uuid.uuid4()

    async def failing():
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                # The model refuses NUL (mmstream.models.bounds); built unchecked, it stands
                # for any value the database refuses in the middle of a batch.
                nul = Product.model_construct(
                    **{**product(bad, V1).model_dump(), "name": "NUL\x00"}
                )
                await merge(conn, [at(product(good, V1)), at(nul)])
        finally:
            await engine.dispose()

    with pytest.raises(psycopg.DataError, match="NUL"):
        asyncio.run(failing())
    assert counts(db_url) == (0, 0, 0)
    # The good record alone goes through afterwards (the sink's one-by-one fallback).
    assert merge_batches(db_url, [at(product(good, V1))])[0].changed == 1


def test_committed_merges_are_visible_to_other_connections_only_after_commit(db_url):
    at = Offsets()
    ref = uuid.uuid4()

    async def main():
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                await merge(conn, [at(product(ref, V1))])
                inside = counts(db_url)  # another connection, before the commit
            return inside
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == (0, 0, 0)
    assert counts(db_url) == (1, 1, 1)


# ------------------------------------------------------------------ bugs found by these tests, fixed


def test_two_merges_in_one_transaction_count_each_batch_on_its_own(db_url):
    at = Offsets()
    a, b = uuid.uuid4(), uuid.uuid4()

    async def main():
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                first = await merge(conn, [at(product(a, V1))])
                second = await merge(conn, [at(product(b, V1))])
            return first, second
        finally:
            await engine.dispose()

    first, second = asyncio.run(main())
    assert first == result(total=1, changed=1, inserted=1)
    assert second == result(total=1, changed=1, inserted=1)


def test_a_1c_change_keeps_the_event_id_the_bridge_answered_with():
    # The bridge answers a POST with change_id(entity, Ref_Key, DataVersion); the stored
    # change (outbox, ce_id downstream) must carry the same id, or a change cannot be
    # followed from 1С to Bitrix24. Other sources' versions are told apart by source.
    ref = uuid.uuid4()
    assert entity_store.change_version(product(ref, V1)) == V1
    b24 = Product(id=ref, source="bitrix24", version=V1, name="Мойка")
    assert entity_store.change_version(b24) == f"bitrix24:{V1}"
