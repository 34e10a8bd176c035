"""Report formatting (pure)."""

from __future__ import annotations

from mmstream.ops import render
from mmstream.ops.model import GroupView, Member, PartitionState, ResetPlan, ResetRow


def _view() -> GroupView:
    return GroupView(
        "g",
        "STABLE",
        [Member("m-1", "worker-1", "/10.0.0.5", [("raw.x", 0)])],
        [
            PartitionState("raw.x", 0, "product", 5, 12, 7, "worker-1", None, 30.0),
            PartitionState("raw.x", 1, "product", None, 3, None),
            PartitionState("norm.y", 0, "warehouse", 2, 2, 0, None, None, 400.0),
        ],
    )


def test_group_view_figures():
    view = _view()
    assert view.active and view.total_lag == 7
    assert view.lag_by_entity == {"product": 7, "warehouse": 0}
    assert view.last_commit_at_most_s == 30.0
    assert view.as_dict()["partitions"][1]["lag"] is None


def test_inactive_when_empty_without_members():
    assert not GroupView("g", "EMPTY", [], []).active
    assert GroupView("g", "STABLE", [], []).active  # the embedded broker names no members


def test_describe_has_the_kafka_tools_columns_and_notes_the_rest():
    view = _view()
    lines = render.group_view(view).split("\n")
    assert lines[0] == ""  # kafka-consumer-groups.sh starts with a blank line
    assert lines[1].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    # %-15s columns (group and topic at least 15 wide, PARTITION 10), the last unpadded.
    assert lines[1].startswith("GROUP           TOPIC           PARTITION  CURRENT-OFFSET  ")
    assert lines[2].split() == ["g", "raw.x", "0", "5", "12", "7", "-", "-", "worker-1"]
    assert lines[3].split() == ["g", "raw.x", "1", "-", "3", "-", "-", "-", "-"]
    idle = GroupView("g", "STABLE", [Member("m-2", "worker-2", "/10.0.0.6")], [])
    assert render.group_view(idle).split("\n")[2].split() == [
        "g",
        "-",
        "-",
        "-",
        "-",
        "-",
        "m-2",
        "/10.0.0.6",
        "worker-2",
    ]
    notes = "\n".join(render.group_notes(view))
    assert "at most 30s ago" in notes and "product 7" in notes and "total lag 7" in notes


def test_reset_plan_has_the_kafka_tools_columns_and_csv():
    plan = ResetPlan(
        "g",
        ["raw.x", "raw.y"],
        "--to-earliest",
        [ResetRow("raw.x", 0, 5, 0), ResetRow("raw.y", 1, None, 3, "clamped")],
    )
    lines = render.reset_plan(plan).split("\n")
    assert lines[0] == "" and lines[1] == "GROUP           TOPIC           PARTITION  NEW-OFFSET"
    assert lines[2] == "g               raw.x           0          0"
    assert render.plan_csv(plan) == "raw.x,0,0\nraw.y,1,3"
    notes = render.reset_notes(plan, executed=False)
    assert "nothing changed" in notes[0] and notes[2] == "  raw.y[1] - -> 3 (clamped)"
    assert plan.as_dict()["after"] == {"raw.x:0": 0, "raw.y:1": 3}
    one = ResetPlan("g", ["raw.x"], "--to-earliest", [ResetRow("raw.x", 0, 5, 0)])
    assert one.as_dict()["after"] == {"0": 0} and one.as_dict()["topic"] == "raw.x"


def test_ages():
    assert [render.age(s) for s in (None, 5, 125, 3 * 3600 + 300, 2 * 86400 + 7200)] == [
        "unknown",
        "5s",
        "2m",
        "3h05m",
        "2d02h",
    ]
