"""The chaos report itself: rows, verdicts and the JSON file the suite writes."""

import json

import pytest

from tests.chaos.report import ChaosReport


def test_rows_replace_by_name_and_serialise(tmp_path):
    report = ChaosReport()
    report.record("kill sink", verdict=False, offered=10, lost=1)
    report.record("kill sink", verdict=True, offered=10, stored=10, notes="rerun")
    report.record("broker stop", verdict="pass", offered=5, accepted=4, restarts=1)
    out = tmp_path / "latest.json"
    report.write(out)
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == ["kill sink", "broker stop"]
    assert rows[0]["verdict"] == "pass" and rows[0]["stored"] == 10
    assert rows[1]["extra"] == {"restarts": 1}
    assert set(rows[0]) >= {
        "name",
        "offered",
        "accepted",
        "stored",
        "at_target",
        "dead_lettered",
        "lost",
        "duplicated",
        "verdict",
    }
    assert "kill sink" in report.table() and "rerun" in report.table()


def test_verdict_must_be_pass_or_fail():
    with pytest.raises(ValueError):
        ChaosReport().record("x", verdict="maybe")
