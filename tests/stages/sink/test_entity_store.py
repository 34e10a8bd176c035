"""merge(): the generic, ownership-aware upsert of canonical entities, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from mmstream.models.base import derived_id
from mmstream.models.warehouse import Warehouse
from stages import crosswalk
from stages.sink.entity_store import Incoming, MergeCounts, merge, rounds

TOPIC = "t.raw.onec.warehouse"


def wh(
    ref: uuid.UUID, version: str, name: str = "Склад №1", source: str = "onec", **fields
) -> Warehouse:
    return Warehouse(id=ref, version=version, name=name, source=source, **fields)


def incoming(entities: list[Warehouse], start: int = 0) -> list[Incoming]:
    return [
        Incoming(e, TOPIC, 1, start + i, {"ce_id": f"e{start + i}"}) for i, e in enumerate(entities)
    ]


def run(db_url: str, *batches: list[Incoming]) -> list[MergeCounts]:
    async def main():
        engine = create_async_engine(db_url)
        try:
            out = []
            for batch in batches:
                async with engine.begin() as conn:
                    out.append(await merge(conn, Warehouse, batch))
            return out
        finally:
            await engine.dispose()

    return asyncio.run(main())


def rows(db_url: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(sql, args).fetchall()


def outbox(db_url: str) -> list[tuple]:
    return rows(
        db_url,
        "SELECT entity_id, change, version, payload->>'name', "
        "(payload->>'revision')::int FROM outbox ORDER BY id",
    )


# ------------------------------------------------------------------ pure


def test_rounds_hold_each_id_once_in_batch_order():
    a, b = uuid.uuid4(), uuid.uuid4()
    batch = incoming([wh(a, "1"), wh(b, "1"), wh(a, "2"), wh(a, "3"), wh(b, "2")])
    out = rounds(batch)
    assert [[(s, r.entity.version) for s, r in part] for part in out] == [
        [(0, "1"), (1, "1")],
        [(2, "2"), (4, "2")],
        [(3, "3")],
    ]


# ------------------------------------------------------------------ versions


def test_new_row_then_duplicate_then_new_version(db_url):
    ref = uuid.uuid4()
    first, dup, second = run(
        db_url,
        incoming([wh(ref, "v1")]),
        incoming([wh(ref, "v1")], 1),
        incoming([wh(ref, "v2", name="Склад Север")], 2),
    )
    assert (first.changed, first.inserted) == (1, 1)
    assert (dup.total, dup.changed, dup.duplicate) == (1, 0, 1)
    assert (second.changed, second.inserted) == (1, 0)
    assert rows(db_url, 'SELECT name, version, revision FROM "warehouse"') == [
        ("Склад Север", "v2", 2)
    ]
    assert [r[1:] for r in outbox(db_url)] == [
        ("upsert", "v1", "Склад №1", 1),
        ("upsert", "v2", "Склад Север", 2),
    ]


def test_replayed_old_version_is_stale_and_never_overwrites(db_url):
    ref = uuid.uuid4()
    run(db_url, incoming([wh(ref, "v1", name="old"), wh(ref, "v2", name="new")]))
    (replay,) = run(db_url, incoming([wh(ref, "v1", name="old")], 5))
    assert (replay.stale, replay.changed) == (1, 0)
    assert rows(db_url, 'SELECT name FROM "warehouse"') == [("new",)]


def test_every_version_in_one_batch_is_published_in_order(db_url):
    ref = uuid.uuid4()
    (counts,) = run(db_url, incoming([wh(ref, f"v{i}", name=f"n{i}") for i in range(4)]))
    assert counts.changed == 4
    assert [r[3] for r in outbox(db_url)] == ["n0", "n1", "n2", "n3"]
    assert [r[4] for r in outbox(db_url)] == [1, 2, 3, 4]


def test_older_stamp_from_same_source_is_stale(db_url):
    ref = uuid.uuid4()
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    newer = wh(ref, "b", name="newer", source="onec", source_stamp=now)
    older = wh(ref, "a", name="older", source="onec", source_stamp=now - timedelta(minutes=5))
    _, late = run(db_url, incoming([newer]), incoming([older], 1))
    assert (late.stale, late.changed) == (1, 0)
    assert rows(db_url, 'SELECT name FROM "warehouse"') == [("newer",)]


def test_same_content_under_a_new_version_changes_nothing_downstream(db_url):
    ref = uuid.uuid4()
    _, echo = run(db_url, incoming([wh(ref, "v1")]), incoming([wh(ref, "v2")], 1))
    assert (echo.changed, echo.unchanged) == (0, 1)
    assert len(outbox(db_url)) == 1


# ------------------------------------------------------------------ ownership


def test_non_owner_cannot_overwrite_owned_fields(db_url):
    ref = uuid.uuid4()
    _, b24 = run(
        db_url,
        incoming([wh(ref, "v1", name="1С name")]),
        incoming([wh(ref, "2026-11-01T10:00:00+03:00", name="courier edit", source="bitrix24")], 1),
    )
    assert (b24.changed, b24.not_owner) == (0, 1)
    assert rows(db_url, 'SELECT name, source FROM "warehouse"') == [("1С name", "onec")]


def test_commerceml_speaks_for_onec(db_url):
    ref = uuid.uuid4()
    _, cml = run(
        db_url,
        incoming([wh(ref, "v1", name="a")]),
        incoming([wh(ref, "sha", name="b", source="commerceml")], 1),
    )
    assert cml.changed == 1
    assert rows(db_url, 'SELECT name FROM "warehouse"') == [("b",)]


# ------------------------------------------------------------------ deletions


def test_deletion_is_a_soft_delete_with_a_delete_change(db_url):
    ref = uuid.uuid4()
    run(db_url, incoming([wh(ref, "v1")]), incoming([wh(ref, "v2", deleted=True)], 1))
    assert rows(db_url, 'SELECT deleted FROM "warehouse"') == [(True,)]
    assert [r[1] for r in outbox(db_url)] == ["upsert", "delete"]


# ------------------------------------------------------------------ crosswalk


def test_crosswalk_rewrites_derived_ids_to_canonical(db_url):
    canonical = uuid.uuid4()
    born_in_b24 = derived_id("warehouse", "bitrix24", "42")

    async def main():
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                await crosswalk.link(conn, "warehouse", "bitrix24", str(canonical), "42")
            async with engine.begin() as conn:
                (out,) = await crosswalk.resolve(
                    conn,
                    [
                        Warehouse(
                            id=uuid.uuid4(),
                            version="v",
                            name="x",
                            source="onec",
                            parent_id=born_in_b24,
                        )
                    ],
                )
                (me,) = await crosswalk.resolve(
                    conn,
                    [
                        Warehouse(
                            id=born_in_b24,
                            version="v",
                            name="x",
                            source="bitrix24",
                            external_ids={"bitrix24": "42"},
                        )
                    ],
                )
                ext = await crosswalk.external_id(conn, "warehouse", "bitrix24", str(canonical))
            return out, me, ext
        finally:
            await engine.dispose()

    out, me, ext = asyncio.run(main())
    assert out.parent_id == canonical
    assert me.id == canonical
    assert ext == "42"


def test_relink_replaces_a_stale_link_but_never_takes_another_ids_object(db_url):
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())

    async def main():
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                await crosswalk.link(conn, "warehouse", "bitrix24", mine, "42")
                await crosswalk.link(conn, "warehouse", "bitrix24", theirs, "7")
            async with engine.begin() as conn:  # 42 was deleted in the portal: now 43
                await crosswalk.relink(conn, "warehouse", "bitrix24", mine, "43")
            async with engine.begin() as conn:  # 7 is another id's object already
                await crosswalk.relink(conn, "warehouse", "bitrix24", mine, "7")
            async with engine.connect() as conn:
                return [
                    await crosswalk.external_id(conn, "warehouse", "bitrix24", c)
                    for c in (mine, theirs)
                ]
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == ["43", "7"]


@pytest.mark.parametrize("bad", ["\x00"])
def test_nul_is_refused_before_the_database(bad):
    from stages.normalize.oddities import Unnormalizable, text

    with pytest.raises(Unnormalizable):
        text(f"a{bad}b")


def test_deletion_naming_only_the_object_keeps_what_we_knew(db_url):
    ref = uuid.uuid4()
    run(db_url, incoming([wh(ref, "v1", name="Склад", address="ул. Ленина, 1")]))
    # The object vanished at the source: the record carries its identity and nothing else.
    (gone,) = run(
        db_url, incoming([Warehouse(id=ref, source="onec", version="v2", name="", deleted=True)], 1)
    )
    assert gone.changed == 1
    assert rows(db_url, 'SELECT name, address, deleted FROM "warehouse"') == [
        ("Склад", "ул. Ленина, 1", True)
    ]


def test_an_object_born_elsewhere_belongs_to_its_writer_until_the_owner_has_it(db_url):
    ref = uuid.uuid4()
    born, edit, owner, late = run(
        db_url,
        incoming([wh(ref, "b1", name="из Битрикс24", source="bitrix24")]),
        incoming([wh(ref, "b2", name="исправлено в Битрикс24", source="bitrix24")], 1),
        incoming([wh(ref, "o1", name="из 1С", source="onec")], 2),
        incoming([wh(ref, "b3", name="снова Битрикс24", source="bitrix24")], 3),
    )
    assert (born.changed, edit.changed, owner.changed) == (1, 1, 1)
    assert (late.changed, late.not_owner) == (0, 1)
    assert rows(db_url, 'SELECT name, writers FROM "warehouse"') == [
        ("из 1С", ["bitrix24", "onec"])
    ]
