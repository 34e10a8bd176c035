"""Report formatting (pure)."""

from __future__ import annotations

from mmstream.ops import render
from mmstream.ops.model import GroupView, Member, PartitionState, ResetPlan, ResetRow


def _view() -> GroupView:
    return GroupView("g", "STABLE", [Member("m-1", "worker-1", "/10.0.0.5", [("raw.x", 0)])], [
        PartitionState("raw.x", 0, "product", 5, 12, 7, "worker-1", None, 30.0),
        PartitionState("raw.x", 1, "product", None, 3, None),
        PartitionState("norm.y", 0, "warehouse", 2, 2, 0, None, None, 400.0),
    ])


def test_group_view_figures():
    view = _view()
    assert view.active and view.total_lag == 7
    assert view.lag_by_entity == {"product": 7, "warehouse": 0}
    assert view.last_commit_at_most_s == 30.0
    assert view.as_dict()["partitions"][1]["lag"] is None


def test_inactive_when_empty_without_members():
    assert not GroupView("g", "EMPTY", [], []).active
    assert GroupView("g", "STABLE", [], []).active  # the embedded broker names no members


def test_tables_show_every_figure():
    text = render.group_view(_view())
    assert "worker-1" in text and "at most 30s ago" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("raw.x") and " 0 " in ln)
    assert line.split()[:6] == ["raw.x", "0", "product", "5", "12", "7"]
    plan = ResetPlan("g", "raw.x", "--to-earliest", [ResetRow("raw.x", 0, 5, 0)])
    assert "preview" in render.reset_plan(plan, executed=False)
    assert render.reset_plan(plan, executed=True).splitlines()[-1].split() == ["0", "5", "0", "-5"]


def test_ages():
    assert [render.age(s) for s in (None, 5, 125, 3 * 3600 + 300, 2 * 86400 + 7200)] == \
        ["unknown", "5s", "2m", "3h05m", "2d02h"]
