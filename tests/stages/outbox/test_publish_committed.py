"""One pass from merge to publish (issue 13 item 6): the merge hands back the outbox entries it
wrote, the sink publishes them after commit without reading them back and marks them
published after the broker's ack; the outbox stays the crash-safety record the sweep reads.
Real broker, PostgreSQL and schema registry."""

from __future__ import annotations

import json
import uuid

from mmstream.envelope import change_id
from stages.outbox.relay import OutboxRow
from stages.sink.entity_store import Incoming, merge
from tests.stages.outbox.publish_support import store_changes
from tests.stages.outbox.test_relay import V2, Harness, outbox_rows, product, run, sql
from tests.support.topics import count_records


def test_merge_returns_the_outbox_entries_it_wrote_in_outbox_order(relay_settings):
    a, b = product("первый", on=1), product("второй", on=1)

    async def scenario(h: Harness):
        changes: list[OutboxRow] = []
        batch = [
            Incoming(a, h.raw, 1, 0, {"x-request-id": "req-a"}),
            Incoming(b, h.raw, 1, 1, {}),
            Incoming(product("второй v2", version=V2, ref=b.id), h.raw, 1, 2, {}),
            Incoming(a, h.raw, 1, 3, {}),
        ]  # a duplicate: no entry
        async with h.engine.begin() as conn:
            counts = await merge(conn, type(a), batch, changes)
        return counts, changes

    counts, changes = run(relay_settings, scenario)
    rows = outbox_rows(relay_settings)
    assert counts.changed == len(changes) == len(rows) == 3
    assert [c.id for c in changes] == [r[0] for r in rows]
    for change, (oid, event_id, entity_id, version, partition, published, created, payload) in zip(
        changes, rows, strict=True
    ):
        assert (change.id, change.event_id, change.entity_id, change.version) == (
            oid,
            event_id,
            entity_id,
            version,
        )
        assert change.entity == "product" and change.change == "upsert"
        assert (change.source_topic, change.source_partition) == (
            relay_settings.topic("raw.onec.product"),
            partition,
        )
        assert change.created_at == created and published is None
        assert json.loads(change.payload_text) == payload
    assert changes[0].headers == {"x-request-id": "req-a"}
    assert changes[0].event_id == uuid.UUID(change_id("product", str(a.id), a.version))


def test_committed_changes_are_published_and_marked_without_a_sweep(relay_settings):
    items = [product(f"товар {i}", on=2) for i in range(3)] + [product("другой", on=4)]

    async def scenario(h: Harness):
        changes = await store_changes(h, items)
        return await h.relay.publish_committed(changes), changes

    published, changes = run(relay_settings, scenario)
    assert published == 4
    assert sql(relay_settings, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    norm = count_records(relay_settings, "norm.product", expect_at_least=4, quiet_s=0)
    egress = count_records(relay_settings, "egress.bitrix24.product", expect_at_least=4, quiet_s=0)
    for topic in (norm, egress):
        in_order = sorted(topic, key=lambda m: (m.partition(), m.offset()))
        assert [int(dict(m.headers())["mm.outbox_id"]) for m in in_order] == sorted(
            c.id for c in changes
        )
        assert {m.key(): m.partition() for m in topic} == {
            str(p.id).encode(): (2 if p.name != "другой" else 4) for p in items
        }
    by_key = {m.key(): json.loads(m.value()) for m in egress}
    for change in changes:
        assert by_key[change.entity_id.encode()] == {
            **json.loads(change.payload_text),
            "event_id": str(change.event_id),
        }


def test_entries_a_crash_left_pending_go_out_first_and_nothing_twice(relay_settings):
    """A crash between a commit and its publication leaves entries pending; the next batch of
    that partition must not overtake them (per-key order), and each goes out once."""
    first = product("до сбоя", on=3)
    later = product("после сбоя", version=V2, ref=first.id)

    async def scenario(h: Harness):
        await store_changes(h, [first])  # committed, never published: the worker died here
        changes = await store_changes(h, [later])
        return await h.relay.publish_committed(changes)

    assert run(relay_settings, scenario) == 2
    assert sql(relay_settings, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    egress = sorted(
        count_records(relay_settings, "egress.bitrix24.product", expect_at_least=2, quiet_s=0),
        key=lambda m: m.offset(),
    )
    assert [json.loads(m.value())["name"] for m in egress] == ["до сбоя", "после сбоя"]


def test_the_next_batch_committed_meanwhile_waits_for_its_own_publication(relay_settings):
    """The sink stores batch N+1 while batch N publishes: N+1's entries, committed after N's
    on the same partition, are not N's to publish (its fast path holds), and they go out
    after N's when N+1 publishes, each once."""
    first = product("партия 1", on=2)
    second = product("партия 2", version=V2, ref=first.id)

    async def scenario(h: Harness):
        mine = await store_changes(h, [first])
        theirs = await store_changes(h, [second])  # committed before `mine` is published
        published = await h.relay.publish_committed(mine)
        pending = sql(relay_settings, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return published, pending, await h.relay.publish_committed(theirs)

    assert run(relay_settings, scenario) == (1, [(1,)], 1)
    egress = sorted(
        count_records(relay_settings, "egress.bitrix24.product", expect_at_least=2, quiet_s=0),
        key=lambda m: m.offset(),
    )
    assert [json.loads(m.value())["name"] for m in egress] == ["партия 1", "партия 2"]


def test_changes_a_sweep_published_first_are_not_published_again(relay_settings):
    item = product("один раз", on=0)

    async def scenario(h: Harness):
        changes = await store_changes(h, [item])
        swept = await h.relay.flush(h.raw, 0, wait=False)  # the timer got there first
        return swept, await h.relay.publish_committed(changes)

    assert run(relay_settings, scenario) == (1, 0)
    assert len(count_records(relay_settings, "norm.product", expect_at_least=1, quiet_s=0)) == 1


def test_a_change_that_cannot_be_encoded_is_dead_lettered_and_the_rest_published(relay_settings):
    good = product("хороший", on=5)

    async def scenario(h: Harness):
        changes = await store_changes(h, [good])
        poison = await store_changes(h, [product("плохой", on=5)])
        # What the Avro schema cannot carry (the merge gave back a value it cannot write).
        bad = poison[0]
        payload = json.loads(bad.payload_text) | {"name": {"not": "a string"}}
        sql(
            relay_settings,
            "UPDATE outbox SET payload = %s WHERE id = %s RETURNING id",
            json.dumps(payload),
            bad.id,
        )
        bad = OutboxRow(**{**vars(bad), "payload_text": json.dumps(payload, ensure_ascii=False)})
        return await h.relay.publish_committed([*changes, bad])

    assert run(relay_settings, scenario) == 2
    marked = sql(relay_settings, "SELECT entity_id FROM outbox WHERE headers ? 'mm.dead_letter'")
    assert len(marked) == 1
    assert sql(relay_settings, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    norm = count_records(relay_settings, "norm.product", expect_at_least=1, quiet_s=0)
    assert [m.key() for m in norm] == [str(good.id).encode()]
    assert len(count_records(relay_settings, "dlq.relay", expect_at_least=1, quiet_s=0)) == 1


def test_the_sweep_leaves_a_live_batch_its_young_entries_and_publishes_crash_leftovers(
    relay_settings,
):
    left, live = product("оставленный", on=1), product("живой", on=2)

    async def scenario(h: Harness):
        await store_changes(h, [left])
        sql(
            relay_settings, "UPDATE outbox SET created_at = now() - interval '1 hour' RETURNING id"
        )  # a crash left it an hour ago
        await store_changes(h, [live])  # committed a moment ago: the sink is publishing it
        owned = [(h.raw, p) for p in range(6)]
        return await h.relay.sweep(owned, min_age_s=60)

    assert run(relay_settings, scenario) == 1
    pending = sql(relay_settings, "SELECT entity_id FROM outbox WHERE published_at IS NULL")
    assert pending == [(str(live.id),)]
