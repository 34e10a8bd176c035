"""``mmctl groups`` as an SRE runs it, against real groups on the broker and a real database."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, pool

from mmstream import audit
from mmstream.kafka.admin import admin_client, apply
from mmstream.kafka.lag import committed_offsets
from mmstream.topics import load_catalog
from tests.support.groups import commit, member, produce


@pytest.fixture
def topics(settings):
    apply(settings, load_catalog(settings.topics_file))
    product, warehouse = settings.topic("raw.onec.product"), settings.topic("raw.onec.warehouse")
    produce(settings, product, {0: 10, 1: 5})
    produce(settings, warehouse, {0: 7})
    return product, warehouse


def _committed(settings, group):
    return {tp: c.offset for tp, c in committed_offsets(admin_client(settings), group).items()}


def _audit(settings, action):
    engine = create_engine(settings.require_database_url(), poolclass=pool.NullPool)
    try:
        return audit.recent_sync(engine, action=action)
    finally:
        engine.dispose()


def test_describe_reports_exact_lag_per_partition_and_entity(settings, mmctl, topics, unique):
    product, warehouse = topics
    group = f"sink-{unique}"
    commit(
        settings, group, [product, warehouse], {(product, 0): 4, (product, 1): 5, (warehouse, 0): 2}
    )

    view = mmctl.json("groups", "describe", group)

    rows = {
        (p["topic"], p["partition"]): (p["committed"], p["end"], p["lag"])
        for p in view["partitions"]
    }
    assert rows[(product, 0)] == (4, 10, 6)
    assert rows[(product, 1)] == (5, 5, 0)
    assert rows[(warehouse, 0)] == (2, 7, 5)
    assert rows[(product, 2)] == (None, 0, None)  # consumed topic, nothing committed there
    assert len(rows) == 12  # every partition of both topics
    assert view["lag_by_entity"] == {"product": 6, "warehouse": 5}
    assert view["total_lag"] == 11 and view["active"] is False
    # Records are stamped in 2023: the last commit was at most that long ago.
    assert view["last_commit_at_most_s"] > 365 * 86400

    listed = {g["group"]: g for g in mmctl.json("groups", "list")}
    assert listed[group]["total_lag"] == 11
    assert sorted(listed[group]["topics"]) == sorted([product, warehouse])
    assert "warehouse" in mmctl("groups", "describe", group).stdout


def test_reset_and_delete_are_refused_while_the_group_has_members(settings, mmctl, topics, unique):
    product, _ = topics
    group = f"sink-{unique}"
    commit(settings, group, [product], {(product, 0): 4})

    with member(settings, group, [product]):
        refused = mmctl(
            "groups", "reset", group, "--topic", product, "--to-earliest", "--execute", expect=1
        )  # a runtime refusal: exit 1, as the Kafka tools
        assert "is active" in refused.stderr
        assert f"member-of-{group}" in refused.stderr or "did not name them" in refused.stderr
        assert "is active" in mmctl("groups", "delete", group, expect=1).stderr
        # A preview is only reading: allowed while members run.
        assert (
            mmctl.json("groups", "reset", group, "--topic", product, "--to-earliest")["executed"]
            is False
        )

    assert _committed(settings, group) == {(product, 0): 4}
    assert _audit(settings, "groups.reset") == [] and _audit(settings, "groups.delete") == []


def test_reset_preview_execute_audit_then_delete(settings, mmctl, topics, unique):
    product, _ = topics
    group = f"sink-{unique}"
    commit(settings, group, [product], {(product, 0): 4, (product, 1): 5})

    preview = mmctl.json(
        "groups", "reset", group, "--topic", "raw.onec.product:0", "--shift-by", "-3"
    )
    assert (preview["before"], preview["after"], preview["executed"]) == ({"0": 4}, {"0": 1}, False)
    assert _committed(settings, group) == {(product, 0): 4, (product, 1): 5}

    done = mmctl.json(
        "groups", "reset", group, "--topic", "raw.onec.product:0", "--shift-by", "-3", "--execute"
    )
    assert _committed(settings, group) == {(product, 0): 1, (product, 1): 5}
    [entry] = _audit(settings, "groups.reset")
    assert (entry.id, entry.actor, entry.target) == (done["audit_id"], "sre-test", group)
    assert (entry.details["before"], entry.details["after"]) == ({"0": 4}, {"0": 1})

    # Records are 1 s apart from 2023-11-14T22:13:20Z: the first at/after +5 s is offset 5;
    # partition 1 has nothing that late (-> its end, 5); empty partitions stay at 0.
    by_time = mmctl.json(
        "groups",
        "reset",
        group,
        "--topic",
        product,
        "--to-datetime",
        "2023-11-14T22:13:25Z",
        "--execute",
    )
    assert by_time["after"] == {"0": 5, "1": 5, "2": 0, "3": 0, "4": 0, "5": 0}
    assert _committed(settings, group)[(product, 0)] == 5
    recent = mmctl.json("groups", "reset", group, "--topic", product, "--by-duration", "PT1H")
    assert recent["after"]["0"] == 10  # nothing in the last hour: the end

    deleted = mmctl.json("groups", "delete", group)
    assert _committed(settings, group) == {}
    [gone] = _audit(settings, "groups.delete")
    assert gone.id == deleted["audit_id"]
    assert gone.details["before"][f"{product}[0]"] == 5 and gone.details["after"] is None
    assert (
        "has no members and no committed offsets"
        in mmctl("groups", "describe", group, expect=1).stderr
    )


def test_reset_needs_exactly_one_target(mmctl, topics, unique):
    out = mmctl(
        "groups",
        "reset",
        f"g-{unique}",
        "--topic",
        topics[0],
        "--to-earliest",
        "--shift-by",
        "1",
        expect=2,
    )
    assert "exactly one of" in out.stderr
